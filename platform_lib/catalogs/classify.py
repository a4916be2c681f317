"""Star–galaxy classification from shapes only, as the seed asks (no colours).

A point source has the concentration of the PSF: the ratio of the flux in a small aperture to
that in a larger one. Galaxies, being extended, are less concentrated. The PSF's own
concentration is measured on the PSF image itself when there is one (exact, no training set),
or on the stellar locus of the brightest sources otherwise. The decision accounts for each
source's measurement noise, so faint sources are not all called galaxies by scatter alone.
"""

from __future__ import annotations

import numpy as np
from astropy.table import QTable

from .photometry import aperture_fluxes

# Inner and outer radii in units of the PSF FWHM: the inner one holds most of a star's core,
# the outer one most of its light; the ratio then separates sizes near the PSF's best.
INNER_FWHM, OUTER_FWHM = 0.6, 2.0
# Intrinsic width of the stellar locus (PSF variation across the field, centring, sampling).
LOCUS_WIDTH = 0.03
# How far below the pixel-centred PSF's concentration a star can fall by pixel phase alone.
PHASE_BAND = 0.15


def concentration(
    data: np.ndarray,
    err: np.ndarray,
    mask: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    fwhm_pix: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Concentration c = F(inner)/F(outer) and its 1-sigma error per source."""
    f1, e1 = aperture_fluxes(data, err, mask, x, y, INNER_FWHM * fwhm_pix)
    f2, e2 = aperture_fluxes(data, err, mask, x, y, OUTER_FWHM * fwhm_pix)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = f1 / f2
        # Inner is a subset of outer: the errors are positively correlated, so this overestimates
        # sigma_c slightly; that errs towards "star" for the faintest sources, documented.
        sc = np.abs(c) * np.sqrt((e1 / f1) ** 2 + (e2 / f2) ** 2)
    return c, sc


def psf_concentration(psf: np.ndarray, fwhm_pix: float) -> float:
    ny, nx = psf.shape
    c, _ = concentration(
        psf,
        np.ones_like(psf),
        np.zeros_like(psf, dtype=bool),
        np.array([(nx - 1) / 2.0]),
        np.array([(ny - 1) / 2.0]),
        fwhm_pix,
    )
    return float(c[0])


def _stellar_locus(
    c: np.ndarray, snr: np.ndarray, psf: np.ndarray | None, fwhm_pix: float
) -> float:
    """Concentration of a point source in this image.

    The PSF image gives it for a star centred on a pixel; undersampled Roman PSFs lose
    concentration when a star falls between pixels, so the locus is refined on the data: the
    median concentration of bright sources within a pixel-phase band below the PSF's value.
    Without a PSF the upper envelope of the bright sources is used (stars are the most
    concentrated objects in a field).
    """
    ok = np.isfinite(c) & (snr > 30)
    if psf is not None:
        c_psf = psf_concentration(psf, fwhm_pix)
        near = ok & (c > c_psf - PHASE_BAND) & (c < c_psf + LOCUS_WIDTH)
        return float(np.median(c[near])) if near.sum() >= 5 else c_psf - PHASE_BAND / 2
    if ok.sum() >= 5:
        return float(np.percentile(c[ok], 90))
    return float(np.nanmax(c))


def classify(
    table: QTable,
    data: np.ndarray,
    err: np.ndarray,
    mask: np.ndarray,
    *,
    fwhm_pix: float,
    psf: np.ndarray | None = None,
    nsigma: float = 2.5,
) -> QTable:
    """Add ``concentration``, ``star_score`` and ``is_star`` to ``table`` (in place, returned).

    ``star_score`` is the distance from the stellar locus in units of the combined noise:
    near 0 or above for point sources, strongly negative for extended ones.
    """
    x, y = np.asarray(table["x"]), np.asarray(table["y"])
    c, sc = concentration(data, err, mask, x, y, fwhm_pix)
    c_star = _stellar_locus(c, np.asarray(table["snr"]), psf, fwhm_pix)
    score = (c - c_star) / np.sqrt(sc**2 + LOCUS_WIDTH**2)
    table["concentration"] = c
    table["star_score"] = score
    table["is_star"] = np.isfinite(score) & (score > -nsigma)
    table.meta["psf_concentration"] = c_star
    return table
