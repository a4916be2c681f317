"""Static L4 catalogs: single-band, and multi-band with forced photometry on one detection image.

The seed's operations, each in its own module: background and detection (``detection``),
measurements (``photometry``), PSF matching (``psfmatch``), shapes and star–galaxy separation
(``classify``), photometric redshifts (``photoz``), alignment to a Gaia-like catalog
(``astrometry``). This module strings them together and decides nothing itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy.table import QTable, Table

from . import psfmatch
from .apcorr import add_total_flux
from .astrometry import AlignmentResult, align_to_reference
from .classify import classify
from .detection import (
    Detection,
    DetectionConfig,
    detect,
    detection_snr,
    estimate_background,
    psf_fwhm_pixels,
)
from .errors import CatalogInputError
from .images import CatalogImage
from .photometry import aperture_fluxes, measure
from .photoz import PhotozConfig, normalize_band, photometric_redshifts

# The pure product's cut on ``detection_snr``: on white noise a 3-sigma, 7-pixel detection
# threshold passes ~11 noise peaks per 1024² (about 180 per detector), at detection_snr 3.3-4.2;
# at 5 the Gaussian tail leaves about one per detector.
PURE_DETECTION_SNR = 5.0

# The pure product's cleaning, SExtractor's CLEAN in its simplest form: on dense fields the false
# detections left above PURE_DETECTION_SNR are not noise (the inverted image has none) but peaks
# in the wings of bright galaxies, 10-25 pixels from a neighbour 2-60 times brighter, at
# detection_snr 5-7 (benchmarks/catalogs/bench_static.py, two fields). A detection below
# PURE_CLEAN_SNR with a neighbour at least PURE_CLEAN_RATIO times brighter (Kron flux) within
# PURE_CLEAN_RADIUS_PIX is left out; isolated faint sources keep the 5-sigma cut (a plain cut at
# 7 would lose a fifth of the faint point sources of tests/catalogs/test_purity.py).
PURE_CLEAN_SNR = 7.0
PURE_CLEAN_RATIO = 2.0
PURE_CLEAN_RADIUS_PIX = 25.0  # 2.75" at WFI's 0.11" pixels

# Colour aperture radius in units of the reference PSF FWHM: large enough that pixel phase and
# residual PSF mismatch matter little, small enough to keep the S/N of faint galaxies.
COLOR_APERTURE_FWHM = 1.5


def _encircled(psf: np.ndarray, radius: float) -> float:
    ny, nx = psf.shape
    f, _ = aperture_fluxes(
        psf,
        np.ones_like(psf),
        np.zeros(psf.shape, bool),
        np.array([(nx - 1) / 2.0]),
        np.array([(ny - 1) / 2.0]),
        radius,
    )
    return float(f[0] / psf.sum())


def reject_psf_artifacts(
    table: QTable,
    data: np.ndarray,
    err: np.ndarray,
    mask: np.ndarray,
    psf: np.ndarray,
    segmentation: np.ndarray,
    *,
    factor: float = 3.0,
    min_snr: float = 30.0,
) -> QTable:
    """Drop detections that are the diffraction rings and spikes of brighter point sources.

    Roman's PSF has bright features an arcsecond from the core; around a bright star they pass
    any noise threshold. A detection is an artifact when its flux in a PSF-sized aperture is
    less than ``factor`` times what the PSF of a brighter star predicts at that offset. Removed
    labels are also erased from the segmentation so catalog and map stay consistent.
    """
    if len(table) == 0:
        return table
    x, y = np.asarray(table["x"]), np.asarray(table["y"])
    r = max(1.5, (psf_fwhm_pixels(psf) or 2.0))
    f, _ = aperture_fluxes(data, err, mask, x, y, r)
    ny, nx = psf.shape
    cy, cx = (ny - 1) / 2.0, (nx - 1) / 2.0
    star = np.asarray(table["is_star"], bool) & (np.asarray(table["snr"]) > min_snr)
    total = f / _encircled(psf, r)
    artifact = np.zeros(len(table), bool)
    for i in np.where(star)[0]:
        dx, dy = x - x[i], y - y[i]
        near = (
            (np.abs(dx) < cx - r)
            & (np.abs(dy) < cy - r)
            & (np.arange(len(table)) != i)
            & (f < f[i])
        )
        if not near.any():
            continue
        pred, _ = aperture_fluxes(
            psf, np.ones_like(psf), np.zeros(psf.shape, bool), cx + dx[near], cy + dy[near], r
        )
        artifact[np.where(near)[0][f[near] < factor * pred * total[i]]] = True
    if artifact.any():
        for label in np.asarray(table["label"])[artifact]:
            segmentation[segmentation == label] = 0
    out = table[~artifact]
    out.meta["n_psf_artifacts_rejected"] = int(artifact.sum())
    return out


@dataclass
class StaticCatalog:
    """An L4 catalog with its segmentation map and how it was made."""

    table: QTable
    segmentation: np.ndarray
    detection: Detection
    wcs: object
    alignment: AlignmentResult | None = None

    def pure(self, min_detection_snr: float | None = None, *, clean: bool = True) -> QTable:
        """The pure product: rows whose filtered-image peak is at least ``min_detection_snr``
        (default :data:`PURE_DETECTION_SNR`), without the faint peaks in bright neighbours'
        wings (``clean``, see :data:`PURE_CLEAN_SNR`). The full table is the complete product."""
        cut = PURE_DETECTION_SNR if min_detection_snr is None else float(min_detection_snr)
        snr = np.asarray(self.table["detection_snr"], dtype=float)
        keep = snr >= cut
        if clean:
            keep &= ~in_bright_wings(self.table, snr)
        out = self.table[keep]
        out.meta["product"] = f"pure (detection_snr >= {cut:g}" + (", cleaned)" if clean else ")")
        return out


def in_bright_wings(table: QTable, snr: np.ndarray) -> np.ndarray:
    """Rows below :data:`PURE_CLEAN_SNR` with a neighbour :data:`PURE_CLEAN_RATIO` times
    brighter within :data:`PURE_CLEAN_RADIUS_PIX` (a boolean mask over ``table``)."""
    from scipy.spatial import cKDTree

    out = np.zeros(len(table), bool)
    faint = np.flatnonzero(snr < PURE_CLEAN_SNR)
    if faint.size == 0 or len(table) < 2:
        return out
    xy = np.column_stack([np.asarray(table["x"], float), np.asarray(table["y"], float)])
    flux = np.asarray(getattr(table["kron_flux"], "value", table["kron_flux"]), dtype=float)
    flux = np.where(np.isfinite(flux), flux, 0.0)
    tree = cKDTree(xy)
    for i, near in zip(faint, tree.query_ball_point(xy[faint], PURE_CLEAN_RADIUS_PIX)):
        others = [j for j in near if j != i]
        out[i] = bool(others) and flux[others].max() >= PURE_CLEAN_RATIO * max(flux[i], 0.0)
    return out


def single_band(
    image: CatalogImage,
    *,
    reference: Table | None = None,
    config: DetectionConfig = DetectionConfig(),
) -> StaticCatalog:
    """Detect, deblend, measure, classify and (optionally) align one image."""
    det = detect(image.data, image.err, image.mask, psf=image.psf, config=config)
    table = measure(
        image, det.data_sub, det.segmentation, convolved=det.convolved, background=det.background
    )
    classify(table, det.data_sub, image.err, image.mask, fwhm_pix=det.kernel_fwhm, psf=image.psf)
    table["detection_snr"] = detection_snr(det, np.asarray(table["label"]))
    segm = det.segmentation.data.copy()
    if image.psf is not None:
        table = reject_psf_artifacts(table, det.data_sub, image.err, image.mask, image.psf, segm)
    add_total_flux(table, image, det.data_sub)
    alignment = align_to_reference(table, reference) if reference is not None else None
    table.meta["detection"] = {
        "nsigma": config.nsigma,
        "npixels": config.npixels,
        "kernel_fwhm_pix": det.kernel_fwhm,
    }
    return StaticCatalog(table, segm, det, image.wcs, alignment)


def _check_same_grid(images: Sequence[CatalogImage]) -> None:
    first = images[0]
    ny, nx = first.shape
    xs = np.array([0.0, nx - 1.0, 0.0, nx - 1.0])
    ys = np.array([0.0, 0.0, ny - 1.0, ny - 1.0])
    ra0, dec0 = first.pixel_to_world(xs, ys)
    for img in images[1:]:
        if img.shape != first.shape:
            raise CatalogInputError(
                f"mismatched bands: {img.band} has shape {img.shape}, {first.band} has {first.shape}; "
                "multi-band catalogs need images on one pixel grid (e.g. L3 mosaics of one sky cell)"
            )
        ra, dec = img.pixel_to_world(xs, ys)
        off = np.hypot((ra - ra0) * np.cos(np.radians(dec0)), dec - dec0) * 3.6e6
        if np.nanmax(off) > 1.0:  # mas
            raise CatalogInputError(
                f"mismatched bands: {img.band} is not on the pixel grid of {first.band} "
                f"(corners differ by up to {np.nanmax(off):.1f} mas)"
            )


def multi_band(
    images: Sequence[CatalogImage],
    *,
    reference: Table | None = None,
    config: DetectionConfig = DetectionConfig(),
    photoz: bool = True,
    photoz_config: PhotozConfig = PhotozConfig(),
) -> StaticCatalog:
    """One catalog across all bands of a field.

    Every band is PSF-matched to the broadest PSF; sources are detected on the inverse-variance
    weighted mean of the matched images; then every band is measured at the detected positions
    (forced photometry) both on its own image and on its PSF-matched image, so colours and the
    photometric redshift use identical effective apertures.
    """
    if not images:
        raise CatalogInputError("no images given")
    bands = [normalize_band(img.band) for img in images]
    if len(set(bands)) != len(bands):
        raise CatalogInputError(
            f"mismatched bands: each optical element must appear once, got {bands}"
        )
    raw = [b for b, img in zip(bands, images) if img.flux_unit != "uJy"]
    if raw:
        raise CatalogInputError(
            f"multi-band photometry needs flux-calibrated images; not calibrated: {raw}"
        )
    missing = [b for b, img in zip(bands, images) if img.psf is None]
    if missing:
        raise CatalogInputError(
            f"PSF-matched photometry needs a PSF for every band; missing for {missing}"
        )
    _check_same_grid(images)

    psfs = {b: img.require_psf("PSF-matched photometry") for b, img in zip(bands, images)}
    ref_band = psfmatch.broadest(psfs)
    ref_psf = psfs[ref_band]
    matched: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    matched_psfs: dict[str, np.ndarray] = {}
    subtracted: dict[str, np.ndarray] = {}
    mask = np.zeros(images[0].shape, dtype=bool)
    for img in images:
        mask |= img.mask
    for b, img in zip(bands, images):
        bkg, _ = estimate_background(img.data, img.mask, config)
        sub = np.where(img.mask, 0.0, img.data - bkg) * img.to_ujy
        err = img.err * img.to_ujy
        subtracted[b] = sub
        if b == ref_band:
            matched[b] = (sub, err)
            matched_psfs[b] = ref_psf
        else:
            kernel = psfmatch.matching_kernel(psfs[b], ref_psf)
            matched[b] = psfmatch.convolve_image(sub, err, img.mask, kernel)
            matched_psfs[b] = psfmatch.convolve_psf(psfs[b], kernel, ref_psf.shape)

    # Detection image: inverse-variance weighted mean of the matched images (uJy / pixel).
    w = [np.where(mask, 0.0, 1.0 / np.where(e > 0, e, np.inf) ** 2) for _, e in matched.values()]
    wsum = np.sum(w, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        det_data = np.sum([wi * d for wi, (d, _) in zip(w, matched.values())], axis=0) / wsum
        det_err = 1.0 / np.sqrt(wsum)
    # The detection image's PSF: the matched PSFs (regularised kernels leave them very slightly broader
    # than the reference) averaged with the same typical weights as the images.
    typical_w = [float(np.median(wi[wi > 0])) for wi in w]
    det_psf = sum(
        (tw * matched_psfs[b] for tw, b in zip(typical_w, matched)), np.zeros_like(ref_psf)
    ) / sum(typical_w)
    det_image = CatalogImage(
        data=np.where(mask, np.nan, det_data),
        err=np.where(mask, np.nan, det_err),
        wcs=images[0].wcs,
        band="DETECTION",
        to_ujy=1.0,
        psf=det_psf,
        name="detection",
    )
    det = detect(det_image.data, det_image.err, det_image.mask, psf=det_image.psf, config=config)
    table = measure(
        det_image,
        det.data_sub,
        det.segmentation,
        convolved=det.convolved,
        background=det.background,
    )
    classify(
        table,
        det.data_sub,
        det_image.err,
        det_image.mask,
        fwhm_pix=det.kernel_fwhm,
        psf=det_image.psf,
    )
    table["detection_snr"] = detection_snr(det, np.asarray(table["label"]))
    segm = det.segmentation.data.copy()
    table = reject_psf_artifacts(
        table, det.data_sub, det_image.err, det_image.mask, det_image.require_psf(), segm
    )

    x, y = np.asarray(table["x"]), np.asarray(table["y"])
    scale = det_image.pixel_scale_arcsec()
    fwhm_ref = psf_fwhm_pixels(ref_psf) or det.kernel_fwhm
    color_r = COLOR_APERTURE_FWHM * fwhm_ref  # pixels
    ee_ref = _encircled(ref_psf, color_r)
    # Total flux: Kron on the detection image over its own colour-aperture flux; all matched
    # images share the reference PSF, so this ratio carries to every band.
    det_aper, _ = aperture_fluxes(det.data_sub, det_image.err, det_image.mask, x, y, color_r)
    with np.errstate(invalid="ignore", divide="ignore"):
        to_total = np.asarray(table["kron_flux"].to_value(u.uJy)) / det_aper
    color_flux, color_err = [], []
    for b, img in zip(bands, images):
        own_err = img.err * img.to_ujy
        f, e = aperture_fluxes(subtracted[b], own_err, img.mask, x, y, 0.4 / scale)
        table[f"{b}_aper040_flux"] = f * u.uJy
        table[f"{b}_aper040_flux_err"] = e * u.uJy
        md, me = matched[b]
        fm, em = aperture_fluxes(md, me, mask, x, y, color_r)
        # The matching kernel is regularised, so the matched PSF is not exactly the reference:
        # correct by the ratio of encircled energies, measured on the matched PSF itself.
        corr = ee_ref / _encircled(matched_psfs[b], color_r)
        fm, em = fm * corr, em * corr
        table[f"{b}_matched_flux"] = fm * u.uJy
        table[f"{b}_matched_flux_err"] = em * u.uJy
        # Point-source total: matched aperture over the reference PSF's encircled energy.
        table[f"{b}_psf_flux"] = fm / ee_ref * u.uJy
        table[f"{b}_psf_flux_err"] = em / ee_ref * u.uJy
        with np.errstate(invalid="ignore", divide="ignore"):
            total = fm * to_total
            table[f"{b}_flux"] = total * u.uJy
            table[f"{b}_flux_err"] = em * np.abs(to_total) * u.uJy
            table[f"{b}_abmag"] = (
                np.where(total > 0, 23.9 - 2.5 * np.log10(total), np.nan) * u.ABmag
            )
        color_flux.append(fm)
        color_err.append(em)
    if photoz:
        pz = photometric_redshifts(
            np.column_stack(color_flux), np.column_stack(color_err), bands, photoz_config
        )
        for col in pz.colnames:
            table[col] = pz[col]
    alignment = align_to_reference(table, reference) if reference is not None else None
    table.meta["bands"] = bands
    table.meta["psf_reference_band"] = ref_band
    table.meta["band"] = "+".join(bands)
    return StaticCatalog(table, segm, det, images[0].wcs, alignment)
