"""Total fluxes of point sources: an aperture flux over the PSF's encircled energy *of the total*.

Why a module: a PSF image is a finite stamp, and every PSF in the platform (the PSF library's
25-pixel stamps, a 63-pixel test stamp, romancal's ePSFs) is normalised to the light inside it.
Roman's PSF keeps 2-5 % of its light beyond 3.5" (more in the red), so an encircled energy
measured on a stamp renormalised to 1 overestimates the aperture's share of the total and a
"total" flux built on it is low by that much. Here the stamp's own share of the total is
computed once from the analytic PSF model the stamp was drawn from (galsim's Roman model,
offline), so ``aperture flux / (EE_stamp(r) x stamp fraction)`` is the total flux.
"""

from __future__ import annotations

import functools

import numpy as np

from ..instrument import PIXEL_SCALE

#: Aperture of the total-flux column: 0.4" radius (3.6 native pixels) holds ~85-90 % of a
#: point source's light in every band, so the correction is small and its pixel-phase and
#: PSF-variation errors are far below 1 %, while the aperture stays small enough for S/N.
TOTAL_APERTURE_ARCSEC = 0.4


def _galsim_band(band: str) -> str:
    """galsim's band name (H158) from either naming (F158 or H158)."""
    from romanisim.models.bandpass import galsim2roman_bandpass, roman2galsim_bandpass

    b = band.upper()
    if b in roman2galsim_bandpass:
        return roman2galsim_bandpass[b]
    if b in galsim2roman_bandpass:
        return b
    from .errors import CatalogInputError

    raise CatalogInputError(f"unknown Roman optical element {band!r}")


@functools.lru_cache(maxsize=64)
def psf_light_fraction(
    band: str,
    size_pixels: int,
    *,
    sca: int = 7,
    pixel_scale: float = PIXEL_SCALE,
    model: str = "galsim",
) -> float:
    """Share of the total light of the pixel-integrated Roman PSF inside a centred square
    stamp of ``size_pixels`` native pixels.

    ``model``: "galsim" (galsim.roman's aberrations: the PSF library and the test fields) or
    "romanisim" (romanisim's own ``psf_utils``: ``platform_lib.simulate`` and its reference
    sets). The profile's flux is 1 by construction, so the drawn sum inside the stamp is the
    fraction directly.
    """
    import galsim

    name = _galsim_band(band)
    if model == "romanisim":
        from romanisim.models import bandpass as rbp
        from romanisim.models.psf_utils import getPSF

        bp = rbp.getBandpasses(AB_zeropoint=True)[name]
    elif model == "galsim":
        import galsim.roman
        from galsim.roman import getPSF

        bp = galsim.roman.getBandpasses(AB_zeropoint=True)[name]
    else:
        raise ValueError(f"model must be 'galsim' or 'romanisim', got {model!r}")
    # the pupil as each engine chooses it: galsim.roman by band (F184/K213 use the long-
    # wavelength mask), romanisim always the short one for achromatic PSFs
    psf = getPSF(
        sca, name if model == "galsim" else None, wavelength=bp.effective_wavelength, pupil_bin=8
    )
    img = psf.drawImage(nx=int(size_pixels), ny=int(size_pixels), scale=pixel_scale, method="auto")
    return float(img.array.sum() / psf.flux)


def encircled_energy_of_total(psf: np.ndarray, radius_pix: float, stamp_fraction: float) -> float:
    """Fraction of a point source's *total* light inside ``radius_pix`` of its centre.

    ``psf``: the stamp (any normalisation); ``stamp_fraction``: its share of the total light.
    """
    from .photometry import aperture_fluxes

    ny, nx = psf.shape
    f, _ = aperture_fluxes(
        psf,
        np.ones_like(psf),
        np.zeros(psf.shape, bool),
        np.array([(nx - 1) / 2.0]),
        np.array([(ny - 1) / 2.0]),
        radius_pix,
    )
    return float(f[0] / psf.sum()) * float(stamp_fraction)


def add_total_flux(
    table, image, data_sub: np.ndarray, *, radius_arcsec: float = TOTAL_APERTURE_ARCSEC
) -> None:
    """Add ``flux_total``, ``flux_total_err`` (and ``abmag_total`` when flux-calibrated).

    Aperture-corrected from the image's PSF (normally the PSF library's) to the total light:
    unbiased for point sources; for a galaxy it is a lower limit (its light extends further
    than a star's), where ``kron_flux`` is the better total.
    """
    import astropy.units as u

    from .photometry import _ab_mag, aperture_fluxes

    if image.psf is None or len(table) == 0:
        return
    scale = image.pixel_scale_arcsec()
    r = radius_arcsec / scale
    ee = encircled_energy_of_total(image.psf, r, image.psf_total_fraction)
    f, e = aperture_fluxes(
        data_sub, image.err, image.mask, np.asarray(table["x"]), np.asarray(table["y"]), r
    )
    unit = u.Unit(image.flux_unit)
    total = f * image.to_ujy / ee
    table["flux_total"] = total * unit
    table["flux_total_err"] = e * image.to_ujy / ee * unit
    if unit == u.uJy:
        table["abmag_total"] = _ab_mag(total) * u.ABmag
    table.meta["total_flux"] = {
        "aperture_radius_arcsec": radius_arcsec,
        "encircled_energy_of_total": ee,
        "psf_stamp_fraction_of_total": float(image.psf_total_fraction),
    }
