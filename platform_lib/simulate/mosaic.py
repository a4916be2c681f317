"""Rectified (L3) mosaics with romanisim.l3 on a tangent-plane grid, each with its truth catalog.

The file is the roman_datamodels ``MosaicModel`` romancal writes for a sky cell; the truth
catalog (every input source with its pixel position) is an astropy Table beside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..instrument import PIXEL_SCALE
from .bands import check_element
from .errors import SimulationInputError
from .product import SimulatedImage
from .scenes import validate_catalog


@dataclass
class MosaicSpec:
    """A rectified (L3) mosaic: tangent-plane grid centre, size, pixel scale, depth."""

    optical_element: str = "F158"
    ra: float = 270.0
    dec: float = 66.0
    shape: tuple[int, int] = (256, 256)
    pixel_scale: float = PIXEL_SCALE / 2  # arcsec; a typical skycell scale (half the native)
    exposure_time: float = 642.0  # s per pixel (effective)
    n_exposures: int = 4
    date: str = "2027-06-01T00:00:00"
    seed: int = 0
    name: str = "sim"

    def check(self) -> MosaicSpec:
        self.optical_element = check_element(self.optical_element)
        if len(self.shape) != 2 or min(self.shape) < 8:
            raise SimulationInputError("mosaic shape must be two sizes >= 8")
        if not 0 < self.pixel_scale <= PIXEL_SCALE:
            raise SimulationInputError(f"mosaic pixel_scale must lie in (0, {PIXEL_SCALE}] arcsec")
        if self.exposure_time <= 0 or self.n_exposures < 1:
            raise SimulationInputError("exposure_time must be > 0 and n_exposures >= 1")
        return self

    @property
    def filename(self) -> str:
        return f"{self.name}_{self.optical_element.lower()}_coadd.asdf"


def simulate_mosaic(catalog, spec: MosaicSpec) -> SimulatedImage:
    """An L3 mosaic with romanisim.l3 on a tangent-plane grid, plus its truth catalog."""
    from astropy.coordinates import SkyCoord
    from astropy.table import Table
    from astropy.time import Time
    from romanisim import l3
    from romanisim.models import wcs

    spec.check()
    validate_catalog(catalog, [spec.optical_element])
    ny, nx = spec.shape
    centre = SkyCoord(spec.ra, spec.dec, unit="deg")
    gw = wcs.create_tangent_plane_gwcs((nx / 2, ny / 2), spec.pixel_scale, centre)
    metadata = {
        "coadd_info": {"time_mean": Time(spec.date)},
        "instrument": {"optical_element": spec.optical_element},
        "wcsinfo": {"ra_ref": spec.ra, "dec_ref": spec.dec},
    }
    node, extras = l3.simulate(
        (ny, nx),
        gw,
        spec.exposure_time,
        spec.optical_element,
        catalog,
        nexposures=spec.n_exposures,
        metadata=metadata,
        seed=spec.seed,
        psftype="galsim",
    )
    extras.pop("simcatobj", None)
    truth = Table()
    for col in ("source_id", "ra", "dec", "type", "n", "half_light_radius", "pa", "ba"):
        if col in catalog.colnames:
            truth[col] = catalog[col]
    x, y = gw.world_to_pixel_values(np.asarray(catalog["ra"]), np.asarray(catalog["dec"]))
    truth["x"], truth["y"] = x, y
    truth["flux"] = np.asarray(catalog[spec.optical_element], dtype=float)
    truth["in_footprint"] = (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)
    truth.meta.update(optical_element=spec.optical_element, level=3)
    node["meta"]["filename"] = spec.filename
    info = {
        "spec": asdict(spec),
        "romanisim": {k: v for k, v in extras.items() if isinstance(v, (np.ndarray, float, int))},
    }
    return SimulatedImage(node, truth, info)
