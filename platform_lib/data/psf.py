"""The PSF library: gridded ePSFs per detector and optical element, queried as photutils models.

Each library file is a ``roman_datamodels`` ``EpsfRefModel`` (the format of romancal's ``epsf``
reference files, so the calibration pipeline can take it as an override) at
``psf/<detector>_<optical_element>_epsf.asdf`` in the store, indexed with level ``PSF``.
The stamps come from galsim's Roman PSF model (galsim.roman, offline) since stpsf's data files
cannot be fetched here: for each point of a ``grid × grid`` layout over the detector, the PSF at
that detector position, at the band's effective wavelength, convolved with the native
0.11" pixel and sampled ``oversample`` times finer: the "new style" ePSF whose stamp sums to
``oversample²``, which is what ``photutils.psf.GriddedPSFModel`` interpolates.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..instrument import GALSIM_BANDS, PIXEL_SCALE
from ..instrument import SCIENCE_PIXELS as DETECTOR_PIXELS
from .store import Store, get_store

__all__ = ["build_psf_library", "make_epsf", "psf", "library_path", "load_epsf"]

log = logging.getLogger(__name__)

PSF_DIR = "psf"


def library_path(detector: str, optical_element: str, prefix: str = PSF_DIR) -> str:
    return f"{prefix.rstrip('/')}/{detector.upper()}_{optical_element.upper()}_epsf.asdf"


def grid_positions(grid: int, margin: float = 4.0) -> tuple[list[float], list[float]]:
    """(x, y) of a grid × grid layout over the detector, x fastest (photutils' grid order)."""
    axis = np.linspace(margin, DETECTOR_PIXELS - 1 - margin, grid)
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    return xx.ravel().tolist(), yy.ravel().tolist()


def _stamp(sca: int, band: str, x: float, y: float, oversample: int, stamp: int) -> np.ndarray:
    import galsim
    import galsim.roman

    bp = galsim.roman.getBandpasses(AB_zeropoint=True)[band]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        psf = galsim.roman.getPSF(
            sca, band, SCA_pos=galsim.PositionD(x + 1, y + 1), pupil_bin=8, wavelength=bp
        )
    epsf = galsim.Convolve(psf, galsim.Pixel(PIXEL_SCALE))
    n = stamp * oversample
    scale = PIXEL_SCALE / oversample
    grid = np.arange(n) - (n - 1) / 2
    # Re-centre: the model's wavefront tilt puts its centroid ~0.1 pixel off the optical axis;
    # a library ePSF is centred on its centroid (as photutils' EPSFBuilder does), so that a
    # fitted x_0, y_0 is the source's centroid.
    shift = np.zeros(2)
    for _ in range(3):
        arr = epsf.shift(*(-shift)).drawImage(nx=n, ny=n, scale=scale, method="no_pixel").array
        arr = arr.astype(np.float64)
        total = arr.sum()
        cx, cy = (arr.sum(axis=0) @ grid) / total, (arr.sum(axis=1) @ grid) / total
        if abs(cx) < 1e-3 and abs(cy) < 1e-3:
            break
        shift += np.array([cx, cy]) * scale
    # "new style": samples of the pixel-integrated PSF; sum = oversample² within the stamp
    arr *= oversample**2 / arr.sum()
    return arr.astype(np.float32)


def make_epsf(
    detector: str, optical_element: str, *, grid: int = 3, oversample: int = 4, stamp: int = 25
):
    """One ``EpsfRefModel`` for a detector and optical element (about 1 s per grid point)."""
    from astropy.time import Time
    from roman_datamodels import datamodels as dm

    band = GALSIM_BANDS[optical_element.upper()]
    sca = int(detector.upper().replace("WFI", ""))
    xs, ys = grid_positions(grid)
    stamps = np.stack([_stamp(sca, band, x, y, oversample, stamp) for x, y in zip(xs, ys)])
    model = dm.EpsfRefModel.create_fake_data(shape=(1, 1, *stamps.shape))
    model.psf = stamps[None, None].astype(np.float32)
    meta = model.meta
    meta.instrument.detector = detector.upper()
    meta.instrument.optical_element = optical_element.upper()
    meta.oversample = oversample
    meta.pixel_x, meta.pixel_y = xs, ys
    meta.defocus = [0]
    meta.spectral_type = ["monochromatic"]
    meta.pedigree = "SIMULATION"
    meta.author = "roman-science-platform"
    meta.origin = "galsim.roman"
    meta.description = (
        f"galsim.roman PSF at the {band} effective wavelength, convolved with the native pixel, "
        f"{grid}x{grid} grid, oversampling {oversample}"
    )
    meta.useafter = Time("2020-01-01T00:00:00")
    return model


def _build_one(
    spec: tuple[str, dict],
    detector: str,
    optical_element: str,
    prefix: str,
    grid: int,
    oversample: int,
    stamp: int,
) -> str:
    url, options = spec
    store = get_store(url, **options) if options else get_store(url)
    model = make_epsf(detector, optical_element, grid=grid, oversample=oversample, stamp=stamp)
    rel = library_path(detector, optical_element, prefix)
    with tempfile.TemporaryDirectory(prefix="roman-psf-") as tmp:
        local = Path(tmp) / Path(rel).name
        model.save(local)
        store.put_file(local, rel)
    return rel


def build_psf_library(
    store: Store | str | None = None,
    *,
    detectors: Sequence[str] = ("WFI01",),
    optical_elements: Sequence[str] = ("F158",),
    prefix: str = PSF_DIR,
    grid: int = 3,
    oversample: int = 4,
    stamp: int = 25,
    client: Any = None,
    progress: bool | None = None,
) -> list[str]:
    """Build and stage the library for every (detector, optical element); Dask for many."""
    from .index import _store_spec

    store = get_store(store)
    spec = _store_spec(store)
    jobs = [(d.upper(), o.upper()) for d in detectors for o in optical_elements]
    args: dict[str, Any] = dict(prefix=prefix, grid=grid, oversample=oversample, stamp=stamp)
    if client is None and len(jobs) <= 2:
        return [_build_one(spec, d, o, **args) for d, o in jobs]
    from platform_lib.compute import get_client
    from platform_lib.compute import progress as wait

    def run(c):
        futs = [c.submit(_build_one, spec, d, o, pure=False, **args) for d, o in jobs]
        out = wait(c, futs, desc="PSF library", show=progress)
        errors = [r for r in out if isinstance(r, BaseException)]
        if errors:
            raise RuntimeError(f"{len(errors)} PSF library files failed: {errors[0]}") from errors[
                0
            ]
        return out

    if client is not None:
        return run(client)
    with get_client() as c:
        return run(c)


_CACHE: dict[tuple[str, str], Any] = {}


def load_epsf(
    detector: str, optical_element: str, store: Store | str | None = None, prefix: str | None = None
):
    """The GriddedPSFModel of one library file (cached), from the store."""
    from astropy.nddata import NDData
    from photutils.psf import GriddedPSFModel

    from .access import open_product

    store = get_store(store)
    rel = _find(store, detector, optical_element, prefix)
    key = (store.url(rel), store.info(rel).get("ETag") or "")
    if key not in _CACHE:
        with open_product(rel, store) as model:
            stamps = np.asarray(model.psf[0, 0], dtype=np.float64)
            xy = list(zip(model.meta.pixel_x, model.meta.pixel_y))
            oversample = int(model.meta.oversample)
        nd = NDData(
            stamps,
            meta={
                "grid_xypos": xy,
                "oversampling": oversample,
                "detector": detector.upper(),
                "filter": optical_element.upper(),
            },
        )
        _CACHE[key] = GriddedPSFModel(nd)
    return _CACHE[key]


def _find(store: Store, detector: str, optical_element: str, prefix: str | None) -> str:
    if prefix is not None:
        rel = library_path(detector, optical_element, prefix)
        if store.exists(rel):
            return rel
    else:
        rel = library_path(detector, optical_element)
        if store.exists(rel):
            return rel
        # anywhere in the store, through the index (e.g. the sample's sample/psf/)
        from .search import get_index

        idx = get_index(store)
        rows = idx.query(
            level="PSF", detector=detector.upper(), optical_element=optical_element.upper()
        )
        if len(rows):
            return str(idx.table.column("path")[int(rows[0])])
    raise FileNotFoundError(
        f"no PSF library file for {detector.upper()} {optical_element.upper()} in {store.root_url}; "
        "build it with 'roman-platform data psf --build'"
    )


def psf(
    detector: str,
    optical_element: str,
    x: float,
    y: float,
    *,
    store: Store | str | None = None,
    flux: float = 1.0,
    prefix: str | None = None,
):
    """A photutils ``GriddedPSFModel`` for a source at detector pixel (x, y) (0-based).

    The model interpolates the library's grid to (x, y) (photutils' bilinear interpolation over
    the four nearest grid PSFs) and is centred there with ``flux``; fit its ``x_0``, ``y_0``,
    ``flux`` with ``photutils.psf.PSFPhotometry`` as usual.
    """
    if not (-0.5 <= x <= DETECTOR_PIXELS - 0.5 and -0.5 <= y <= DETECTOR_PIXELS - 0.5):
        raise ValueError(f"({x}, {y}) is outside the {DETECTOR_PIXELS}² detector")
    model = load_epsf(detector, optical_element, store, prefix).copy()
    model.x_0 = x
    model.y_0 = y
    model.flux = flux
    return model
