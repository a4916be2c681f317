"""Difference imaging: template from all but the most recent image, PSF-match, subtract, find
point sources in the difference, and write an L4 catalog of them.

Inputs are rectified images of one sky area on one pixel grid (L3 mosaics of a sky cell, or
resampled L2). The template is the inverse-variance weighted mean of the older images; the
sharper of template and science is convolved to the PSF of the broader with a Fourier matching
kernel (photutils), the errors propagated through the same kernel. Sources are found on the
PSF-matched-filter S/N image, whose noise is measured (sigma clipped) rather than predicted,
because matched and co-added images have correlated noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy.stats import sigma_clipped_stats
from astropy.table import QTable
from photutils.detection import find_peaks
from scipy.signal import fftconvolve

from . import psfmatch
from .detection import estimate_background, psf_fwhm_pixels
from .errors import CatalogInputError
from .images import CatalogImage
from .static import _check_same_grid


@dataclass
class Difference:
    science: CatalogImage
    difference: np.ndarray  # uJy / pixel
    error: np.ndarray
    psf: np.ndarray  # PSF of the difference image
    snr: np.ndarray  # matched-filter S/N, normalised to unit noise
    n_template: int


def split_template(images: Sequence[CatalogImage]) -> tuple[list[CatalogImage], CatalogImage]:
    """(template images, science image): the science image is the most recent one."""
    if len(images) < 2:
        raise CatalogInputError("difference imaging needs at least two overlapping images")
    if any(img.mjd is None for img in images):
        raise CatalogInputError(
            "every image needs an observation time (mjd) to pick the most recent"
        )
    ordered = sorted(images, key=lambda im: float(im.mjd or 0.0))  # every mjd is set (above)
    return ordered[:-1], ordered[-1]


def _subtracted(img: CatalogImage) -> tuple[np.ndarray, np.ndarray]:
    bkg, _ = estimate_background(img.data, img.mask)
    return np.where(img.mask, 0.0, img.data - bkg) * img.to_ujy, img.err * img.to_ujy


def subtract(images: Sequence[CatalogImage]) -> Difference:
    """Build the template, PSF-match, subtract (science minus template)."""
    templates, science = split_template(images)
    _check_same_grid([science, *templates])
    bands = {img.band for img in images}
    if len(bands) != 1:
        raise CatalogInputError(
            f"mismatched bands: difference imaging needs one optical element, got {sorted(bands)}"
        )
    if any(img.psf is None for img in images):
        raise CatalogInputError("difference imaging needs the PSF of every image")
    mask = np.zeros(science.shape, bool)
    num = np.zeros(science.shape)
    wsum = np.zeros(science.shape)
    for t in templates:
        d, e = _subtracted(t)
        w = np.where(t.mask, 0.0, 1.0 / np.where(e > 0, e, np.inf) ** 2)
        num += w * d
        wsum += w
        mask |= t.mask
    with np.errstate(invalid="ignore", divide="ignore"):
        tmpl = num / wsum
        tmpl_err = 1.0 / np.sqrt(wsum)
    template_psfs = [t.require_psf("difference imaging") for t in templates]
    tmpl_psf = sum(template_psfs[1:], template_psfs[0]) / len(templates)
    tmpl_psf = tmpl_psf / tmpl_psf.sum()
    science_psf = science.require_psf("difference imaging")
    sci, sci_err = _subtracted(science)
    mask |= science.mask | ~np.isfinite(tmpl)
    tmpl = np.where(mask, 0.0, tmpl)
    tmpl_err = np.where(mask, np.inf, tmpl_err)
    if _same_psf(tmpl_psf, science_psf):
        # Same PSF (one detector position, one band): a windowed matching kernel would only
        # blur the science image and leave a residual at every star.
        psf = science_psf
    elif (psf_fwhm_pixels(tmpl_psf) or 0) >= (psf_fwhm_pixels(science_psf) or 0):
        kernel = psfmatch.matching_kernel(science_psf, tmpl_psf)
        sci, sci_err = psfmatch.convolve_image(sci, sci_err, mask, kernel)
        psf = tmpl_psf
    else:
        kernel = psfmatch.matching_kernel(tmpl_psf, science_psf)
        tmpl, tmpl_err = psfmatch.convolve_image(tmpl, np.where(mask, 0.0, tmpl_err), mask, kernel)
        psf = science_psf
    diff = np.where(mask, 0.0, sci - tmpl)
    err = np.where(mask, np.inf, np.sqrt(sci_err**2 + tmpl_err**2))
    # Matched filter: correlate with the PSF; normalise the S/N by its measured noise.
    filt = fftconvolve(diff, psf[::-1, ::-1], mode="same")
    var = fftconvolve(np.where(mask, 0.0, err**2), (psf**2)[::-1, ::-1], mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = filt / np.sqrt(var)
    snr = np.where(mask | ~np.isfinite(snr), 0.0, snr)
    _, med, std = sigma_clipped_stats(snr[~mask], sigma=3.0, maxiters=10)
    snr = (snr - med) / std
    return Difference(science, diff, err, psf, snr, len(templates))


def _same_psf(a: np.ndarray, b: np.ndarray, tol: float = 0.01) -> bool:
    """PSFs equal to within ``tol`` in total absolute difference (both normalised to 1)."""
    if a.shape != b.shape:
        return False
    return float(np.abs(a / a.sum() - b / b.sum()).sum()) < tol


def find_sources(
    diff: Difference, *, threshold: float = 5.0, min_separation_fwhm: float = 2.0
) -> QTable:
    """Positive and negative point sources above ``threshold`` sigma in the difference."""
    fwhm = psf_fwhm_pixels(diff.psf) or 2.0
    box = max(3, int(round(min_separation_fwhm * fwhm)) | 1)
    rows = []
    for sign in (+1, -1):
        peaks = find_peaks(
            sign * diff.snr, threshold, box_size=box, border_width=int(np.ceil(2 * fwhm))
        )
        if peaks is None:
            continue
        for p in peaks:
            rows.append((int(p["x_peak"]), int(p["y_peak"]), sign))
    sci = diff.science
    t = QTable()
    if not rows:
        t.meta.update(_meta(diff, threshold))
        for name in ("x", "y", "ra", "dec", "flux", "flux_err", "snr", "sign"):
            t[name] = np.zeros(0)
        return t
    unit = u.Unit(sci.flux_unit)  # uJy, or DN/s for a product that is not flux calibrated
    x = np.array([r[0] for r in rows], float)
    y = np.array([r[1] for r in rows], float)
    signs = np.array([r[2] for r in rows])
    flux, ferr = psf_photometry(diff.difference, diff.error, diff.psf, x, y)
    ra, dec = sci.pixel_to_world(x, y)
    t["x"] = x
    t["y"] = y
    t["ra"] = ra * u.deg
    t["dec"] = dec * u.deg
    t["flux"] = flux * unit
    t["flux_err"] = ferr * unit
    t["snr"] = diff.snr[y.astype(int), x.astype(int)]
    t["sign"] = signs
    t.meta.update(_meta(diff, threshold))
    return t


def _meta(diff: Difference, threshold: float) -> dict:
    sci = diff.science
    return {
        "science_image": sci.name,
        "mjd": sci.mjd,
        "band": sci.band,
        "flux_unit": sci.flux_unit,
        "n_template_images": diff.n_template,
        "threshold_sigma": threshold,
    }


def psf_photometry(
    data: np.ndarray, err: np.ndarray, psf: np.ndarray, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Optimal (PSF-weighted) flux at integer positions: sum(P d / s^2) / sum(P^2 / s^2)."""
    ny, nx = psf.shape
    hy, hx = ny // 2, nx // 2
    flux = np.full(len(x), np.nan)
    ferr = np.full(len(x), np.nan)
    H, W = data.shape
    for i, (xi, yi) in enumerate(zip(x.astype(int), y.astype(int))):
        y0, y1 = max(0, yi - hy), min(H, yi + hy + 1)
        x0, x1 = max(0, xi - hx), min(W, xi + hx + 1)
        p = psf[hy - (yi - y0) : hy + (y1 - yi), hx - (xi - x0) : hx + (x1 - xi)]
        d = data[y0:y1, x0:x1]
        v = err[y0:y1, x0:x1] ** 2
        ok = np.isfinite(v) & (v > 0) & np.isfinite(d)
        w = np.where(ok, p / np.where(ok, v, 1.0), 0.0)
        den = (w * p).sum()
        if den > 0:
            flux[i] = (w * d).sum() / den
            ferr[i] = 1.0 / np.sqrt(den)
    return flux, ferr


def difference_catalog(images: Sequence[CatalogImage], *, threshold: float = 5.0) -> QTable:
    """The L4 difference-imaging catalog of the most recent image against the others."""
    return find_sources(subtract(images), threshold=threshold)
