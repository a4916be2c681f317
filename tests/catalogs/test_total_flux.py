"""The single-band catalog's total flux (``flux_total``): aperture-corrected to the PSF's
total light, unbiased for point sources to 1 % (``kron_flux`` and a stamp-normalised aperture
correction are both biased low by more than that)."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest

from platform_lib.catalogs import CatalogImage, single_band
from platform_lib.catalogs.apcorr import psf_light_fraction

STAMP = 63  # the conftest's PSF stamps (native pixels)


def _stars(field, cat):
    """Match in pixels (the image WCS carries the field's deliberate pointing error)."""
    t, tr = cat.table, field.truth
    d = np.hypot(
        np.asarray(t["x"])[None, :] - np.asarray(tr["x"])[:, None],
        np.asarray(t["y"])[None, :] - np.asarray(tr["y"])[:, None],
    )
    idx = np.argmin(d, axis=1)
    return idx, (d[np.arange(len(tr)), idx] < 1.0) & np.asarray(tr["is_star"])


@pytest.mark.parametrize("band", ["H158", "F184"])
def test_total_flux_of_point_sources_is_unbiased(field, band) -> None:
    fraction = psf_light_fraction(band, STAMP, sca=7)
    image = CatalogImage(
        field.images[band],
        field.errors[band],
        field.wcs,
        band,
        psf=field.psfs[band],
        psf_total_fraction=fraction,
        name=band,
    )
    cat = single_band(image)
    idx, star = _stars(field, cat)
    bright = star & (np.asarray(field.truth[f"{band}_mag"]) < 22.0)
    assert bright.sum() >= 8
    rows = cat.table[idx[bright]]
    true = 10 ** ((23.9 - np.asarray(field.truth[f"{band}_mag"])[bright]) / 2.5)
    ratio = rows["flux_total"].to_value(u.uJy) / true
    kron = rows["kron_flux"].to_value(u.uJy) / true
    stamp_only = ratio * fraction  # what the same correction gives on a stamp normalised to 1
    print(
        f"\n{band}: {bright.sum()} stars, flux_total/true median {np.median(ratio):.4f} "
        f"(rms {ratio.std():.4f}); stamp-normalised {np.median(stamp_only):.4f}; "
        f"kron {np.median(kron):.4f}; stamp holds {fraction:.4f} of the light"
    )
    assert abs(np.median(ratio) - 1.0) < 0.01
    assert abs(np.median(stamp_only) - 1.0) > abs(np.median(ratio) - 1.0)
    assert cat.table.meta["total_flux"]["psf_stamp_fraction_of_total"] == pytest.approx(fraction)
    assert cat.table["abmag_total"].unit == u.ABmag


def test_bad_stamp_fraction_is_refused(field) -> None:
    from platform_lib.catalogs import CatalogInputError

    with pytest.raises(CatalogInputError, match="psf_total_fraction"):
        CatalogImage(
            field.images["H158"],
            field.errors["H158"],
            field.wcs,
            "H158",
            psf=field.psfs["H158"],
            psf_total_fraction=1.5,
        )
