"""Source injection into existing L2 or L3 images (real or simulated), with truth.

romanisim does the physics: for an L2 image it renders the new sources with the PSF of the
detector position, turns them into resultants along the file's MA table, adds them to a
"virtual" ramp of the existing rates and refits the ramp (so noise and weights stay right);
for an L3 mosaic it adds the sources with the mosaic's pixel scale and depth. Here we choose
the PSF (galsim's, at the injected sources' detector position, varying over the detector
for large images), check the catalog, and return the truth of what was injected, so a later
catalog step can be compared with :func:`platform_lib.simulate.matching.match_catalogs`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import SimulationInputError
from .scenes import validate_catalog


def _kind(model) -> str:
    from roman_datamodels import datamodels as dm

    if isinstance(model, dm.ImageModel):
        return "L2"
    if isinstance(model, dm.MosaicModel):
        return "L3"
    raise SimulationInputError(
        f"can inject into an L2 ImageModel or an L3 MosaicModel, not {type(model).__name__}"
    )


def inject(
    model,
    catalog,
    *,
    seed: int = 0,
    gain: float | None = None,
    detector_offset: tuple[int, int] = (0, 0),
) -> tuple[Any, Any]:
    """Return ``(new model, truth Table)``; the input model is left unchanged.

    ``detector_offset`` is the detector pixel of the file's pixel (0, 0) (non-zero for a
    cutout, which our simulated files record), so the PSF is the one of the true position.
    """
    import galsim
    from astropy.table import Table

    kind = _kind(model)
    element = str(model.meta.instrument.optical_element)
    validate_catalog(catalog, [element])
    ny, nx = model.data.shape
    x, y = model.meta.wcs.numerical_inverse(
        np.asarray(catalog["ra"], dtype=float),
        np.asarray(catalog["dec"], dtype=float),
        with_bounding_box=False,
    )
    x, y = np.atleast_1d(x), np.atleast_1d(y)
    inside = (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)
    if not np.any(inside):
        raise SimulationInputError("none of the sources to inject falls on the image")
    cat = catalog[inside]
    rng = galsim.UniformDeviate(seed + 1)
    if kind == "L2":
        import romanisim.psf
        from romanisim import image as rimage
        from romanisim.models import parameters
        from romanisim.models import wcs as rwcs

        sca = int(str(model.meta.instrument.detector)[3:])
        variable = max(nx, ny) > 1024
        pix = (
            None
            if variable
            else (
                detector_offset[0] + float(np.mean(x[inside])),
                detector_offset[1] + float(np.mean(y[inside])),
            )
        )
        psf = romanisim.psf.make_psf(
            sca,
            element,
            wcs=rwcs.GWCS(model.meta.wcs),
            chromatic=False,
            psftype="galsim",
            variable=variable,
            pix=pix,
            date=model.meta.exposure.start_time,
        )
        new = rimage.inject_sources_into_l2(
            model,
            cat,
            x=x[inside],
            y=y[inside],
            psf=psf,
            rng=rng,
            gain=gain if gain is not None else parameters.reference_data["gain"],
            psftype="galsim",
        )
    else:
        from romanisim import l3

        new = l3.inject_sources_into_l3(
            model, cat, x=x[inside], y=y[inside], rng=rng, psftype="galsim", seed=seed
        )
    truth = Table()
    for col in ("source_id", "ra", "dec", "type", "n", "half_light_radius", "pa", "ba"):
        if col in cat.colnames:
            truth[col] = cat[col]
    truth["x"], truth["y"] = x[inside], y[inside]
    truth["flux"] = np.asarray(cat[element], dtype=float)
    truth.meta.update(optical_element=element, level=kind, injected=True)
    return new, truth


def inject_file(path: str, catalog, out_url: str, name: str | None = None, *, seed: int = 0):
    """Inject into the product at ``path`` (local or store URL); write result + truth to the store."""
    import os

    import asdf
    import fsspec
    import roman_datamodels as rdm

    from .output import write_product
    from .product import SimulatedImage

    with fsspec.open(path, "rb") as f:
        data = f.read()
    import io

    offset = (0, 0)
    with asdf.open(io.BytesIO(data), lazy_load=False, memmap=False) as af:
        fp = af.tree.get("platform_simulate", {}).get("spec", {}).get("footprint")
        if fp:
            offset = (int(fp["x0"]), int(fp["y0"]))
        model = rdm.open(af)
        new, truth = inject(model, catalog, seed=seed, detector_offset=offset)
        node = new._instance if hasattr(new, "_instance") else new
        sim = SimulatedImage(node, truth, {"injected_into": path})
        name = name or os.path.basename(path).replace(".asdf", "_injected.asdf")
        return write_product(sim, out_url, name)
