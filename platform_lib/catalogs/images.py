"""The image the catalog layer works on, whatever it came from.

L2 exposures and L3 mosaics arrive as roman_datamodels models (``ImageModel``, ``MosaicModel``)
with a gwcs; simulations and tests produce plain arrays with an astropy WCS. Everything below
this module sees one small type, checked once here, so that a missing WCS, a missing error
array or an all-NaN image is refused before any work (and before anything is written).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import CatalogInputError


@dataclass
class CatalogImage:
    """A calibrated image with its per-pixel 1-sigma error, its WCS and its band.

    ``data`` and ``err`` share one unit (e.g. MJy/sr for romancal products, e-/s for simple
    simulations); ``to_ujy`` converts a sum of pixels in that unit to microjansky, which is what
    the catalogs report (AB magnitude = 23.9 - 2.5 log10(flux_ujy)). A product that has not been
    flux calibrated has ``flux_unit`` "DN/s" and ``to_ujy`` 1: its catalog is in DN/s and has
    no AB magnitudes, rather than magnitudes that look calibrated and are not.
    ``psf`` is an optional normalised PSF image sampled at the image's pixel scale, centred;
    ``psf_total_fraction`` is the share of the PSF's total light inside that stamp (it is
    renormalised to 1 here, so total fluxes need it; see ``apcorr.psf_light_fraction``).
    ``mask`` (optional, True = bad) is extended here with every non-finite pixel and every
    pixel without a valid error, so after construction it is always a full boolean array.
    """

    data: np.ndarray
    err: np.ndarray
    wcs: Any
    band: str
    to_ujy: float = 1.0
    flux_unit: str = "uJy"
    psf: np.ndarray | None = None
    mjd: float | None = None
    name: str = ""
    mask: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))
    meta: dict[str, Any] = field(default_factory=dict)
    psf_total_fraction: float = 1.0

    def __post_init__(self) -> None:
        label = self.name or self.band or "image"
        if self.wcs is None:
            raise CatalogInputError(
                f"{label}: the image has no WCS; positions cannot be put on the sky"
            )
        self.data = np.asarray(self.data, dtype=np.float64)
        if self.data.ndim != 2:
            raise CatalogInputError(f"{label}: expected a 2-D image, got shape {self.data.shape}")
        if self.err is None:
            raise CatalogInputError(
                f"{label}: the image has no error array; catalog uncertainties come from the noise model"
            )
        self.err = np.asarray(self.err, dtype=np.float64)
        if self.err.shape != self.data.shape:
            raise CatalogInputError(
                f"{label}: error array shape {self.err.shape} differs from data shape {self.data.shape}"
            )
        bad = ~np.isfinite(self.data) | ~np.isfinite(self.err) | (self.err <= 0)
        if self.mask is not None and np.size(self.mask):
            bad |= np.asarray(self.mask, dtype=bool)
        if bad.all():
            raise CatalogInputError(f"{label}: every pixel is NaN, masked or has no valid error")
        self.mask = bad
        if self.psf is not None:
            psf = np.asarray(self.psf, dtype=np.float64)
            self.psf = psf / psf.sum()
        if not 0.0 < float(self.psf_total_fraction) <= 1.0:
            raise CatalogInputError(
                f"{label}: psf_total_fraction must lie in (0, 1], got {self.psf_total_fraction}"
            )

    @property
    def shape(self) -> tuple[int, int]:
        ny, nx = self.data.shape
        return ny, nx

    def require_psf(self, what: str = "this measurement") -> np.ndarray:
        """The image's PSF, or a CatalogInputError saying that ``what`` needs one."""
        if self.psf is None:
            raise CatalogInputError(f"{self.name or self.band}: {what} needs a PSF image")
        return self.psf

    def pixel_to_world(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RA, Dec in degrees of 0-based pixel positions, for astropy WCS and gwcs alike."""
        sky = self.wcs.pixel_to_world(x, y)
        return np.asarray(sky.ra.deg), np.asarray(sky.dec.deg)

    def world_to_pixel(self, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from astropy.coordinates import SkyCoord

        x, y = self.wcs.world_to_pixel(SkyCoord(ra, dec, unit="deg"))
        return np.asarray(x, dtype=float), np.asarray(y, dtype=float)

    def pixel_scale_arcsec(self) -> float:
        """Mean pixel scale at the image centre, from the WCS (no header keyword assumed)."""
        ny, nx = self.shape
        cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
        ra, dec = self.pixel_to_world(np.array([cx, cx + 1, cx]), np.array([cy, cy, cy + 1]))
        from astropy.coordinates import SkyCoord

        c = SkyCoord(ra, dec, unit="deg")
        return float((c[0].separation(c[1]).arcsec + c[0].separation(c[2]).arcsec) / 2)


# Roman products: pixel sums in MJy/sr to microjansky need the pixel solid angle.
_MJY_SR_TO_UJY_PER_SR = 1e12


def from_model(model: Any, *, psf: np.ndarray | None = None, name: str = "") -> CatalogImage:
    """A ``CatalogImage`` from a roman_datamodels ``ImageModel`` (L2) or ``MosaicModel`` (L3).

    Units: romancal writes L2/L3 in MJy/sr; a pixel sum times the pixel area (sr) gives MJy.
    The pixel area comes from the product's photometry metadata when present, else from the WCS.
    """
    meta = model.meta
    wcs = getattr(meta, "wcs", None)
    label = name or str(getattr(meta, "filename", "") or "model")
    if wcs is None:
        raise CatalogInputError(f"{label}: the product has no WCS (meta.wcs); run assign_wcs first")
    band = _optical_element(meta)
    err = getattr(model, "err", None)
    if err is None:
        raise CatalogInputError(f"{label}: the product has no 'err' array")
    data = np.asarray(model.data, dtype=np.float64)
    err = np.asarray(err, dtype=np.float64)
    mjd = None
    try:
        mjd = float(meta.exposure.start_time.mjd)
    except AttributeError:
        try:
            mjd = float(meta.coadd_info.time_mean.mjd)
        except AttributeError:
            mjd = None
    img = CatalogImage(data=data, err=err, wcs=wcs, band=band, psf=psf, mjd=mjd, name=label)
    state = _calibration_state(meta)
    if state == "uncalibrated":
        img.flux_unit, img.to_ujy = "DN/s", 1.0
        return img
    # abs(): romanisim 0.14 writes the pixel area (and so the conversion) with the sign of its
    # WCS's handedness; the solid angle itself is what matters.
    area_sr = None
    try:
        area_sr = abs(float(meta.photometry.pixel_area))
    except (AttributeError, TypeError):
        area_sr = None
    if not area_sr or not np.isfinite(area_sr) or area_sr <= 0:
        area_sr = (img.pixel_scale_arcsec() / 206264.80624709636) ** 2
    img.to_ujy = area_sr * _MJY_SR_TO_UJY_PER_SR
    if state == "dn_per_s":  # photom not applied, but its conversion is known: apply it here
        img.to_ujy *= abs(float(meta.photometry.conversion_megajanskys))
    return img


def _calibration_state(meta: Any) -> str:
    """'mjy_sr' (romancal's photom step ran), 'dn_per_s' (a conversion factor is recorded, not
    yet applied) or 'uncalibrated' (neither: romanisim's raw L2, for one)."""
    for steps in ("cal_step", "l2_cal_step", "l3_cal_step"):
        node = getattr(meta, steps, None) if steps in meta else None
        if node is not None and str(getattr(node, "photom", "")).upper() == "COMPLETE":
            return "mjy_sr"
    try:
        conv = float(meta.photometry.conversion_megajanskys)
    except (AttributeError, TypeError, ValueError):
        conv = -1.0
    # -999999 is roman_datamodels' "not set"; a negative area-signed value from romanisim is set.
    return "dn_per_s" if np.isfinite(conv) and conv != 0 and conv > -1e5 else "uncalibrated"


def _optical_element(meta: Any) -> str:
    for path in (("instrument", "optical_element"), ("basic", "optical_element")):
        node = meta
        try:
            for p in path:
                node = getattr(node, p)
            return str(node)
        except AttributeError:
            continue
    return "UNKNOWN"
