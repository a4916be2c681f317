"""Static L4 catalogs validated against the simulated field's truth (tests/catalogs/conftest.py).

Every threshold is argued in docs/catalogs.md from the simulation's noise and the instrument
(undersampled Roman PSFs), not from what the code happened to reach.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from platform_lib.catalogs import (
    CatalogImage,
    CatalogInputError,
    multi_band,
    read_segmentation,
    single_band,
    write_products,
)
from platform_lib.catalogs.outputs import read_catalog

BANDS = ("R062", "Z087", "Y106", "J129", "H158", "F184")
MATCH_ARCSEC = 0.25  # ~2 pixels: galaxies' centroids scatter more than stars'


def _images(field, bands=BANDS):
    return [
        CatalogImage(field.images[b], field.errors[b], field.wcs, b, psf=field.psfs[b], name=b)
        for b in bands
    ]


@pytest.fixture(scope="module")
def catalog(field):
    return multi_band(_images(field), reference=field.reference)


@pytest.fixture(scope="module")
def matched(field, catalog):
    t, tr = catalog.table, field.truth
    det = SkyCoord(t["ra"], t["dec"])
    tru = SkyCoord(tr["ra"] * u.deg, tr["dec"] * u.deg)
    idx, sep, _ = tru.match_to_catalog_sky(det)
    found = sep.arcsec < MATCH_ARCSEC
    return idx, sep, found


def _expected_stamp_loss_mag(band: str) -> float:
    """The flux a 63-pixel PSF stamp (0.11'' pixels) misses in Roman's far wings, from galsim."""
    import galsim
    import galsim.roman

    bp = galsim.roman.getBandpasses(AB_zeropoint=True)[band]
    psf = galsim.roman.getPSF(7, band, wavelength=bp.effective_wavelength, pupil_bin=8)
    big = psf.drawImage(nx=255, ny=255, scale=0.11, method="auto").array
    c = 127
    inner = big[c - 31 : c + 32, c - 31 : c + 32].sum()
    return float(-2.5 * np.log10(inner / big.sum()))


def test_completeness_and_purity(field, catalog, matched) -> None:
    idx, sep, found = matched
    mag = np.asarray(field.truth["H158_mag"])
    assert found[mag < 23].mean() >= 0.95, f"completeness H<23: {found[mag < 23].mean():.2f}"
    det = SkyCoord(catalog.table["ra"], catalog.table["dec"])
    tru = SkyCoord(field.truth["ra"] * u.deg, field.truth["dec"] * u.deg)
    _, sep_d, _ = det.match_to_catalog_sky(tru)
    purity = (sep_d.arcsec < MATCH_ARCSEC).mean()
    assert purity >= 0.90, f"purity {purity:.2f} ({len(det)} detections)"


def test_bright_star_photometry(field, catalog, matched) -> None:
    idx, _, found = matched
    tr = field.truth
    bright = found & np.asarray(tr["is_star"]) & (np.asarray(tr["H158_mag"]) < 22)
    assert bright.sum() >= 8
    rows = catalog.table[idx[bright]]
    for band, col in (("H158", "F158"), ("R062", "F062")):
        mag = 23.9 - 2.5 * np.log10(rows[f"{col}_psf_flux"].to_value(u.uJy))
        d = mag - np.asarray(tr[f"{band}_mag"])[bright]
        expected = _expected_stamp_loss_mag(band)
        assert abs(np.median(d) - expected) < 0.015, (
            f"{band}: bias {np.median(d):.3f} vs stamp loss {expected:.3f}"
        )
        assert np.std(d) < 0.03, f"{band}: scatter {np.std(d):.3f} mag"


def test_astrometry_tied_to_reference(field, catalog, matched) -> None:
    idx, sep, found = matched
    stars = found & np.asarray(field.truth["is_star"])
    snr = np.asarray(catalog.table["snr"])[idx]
    good = stars & (snr > 20)
    rms = np.sqrt(np.mean(sep[good].to_value(u.mas) ** 2))
    assert (
        catalog.alignment is not None and catalog.alignment.rms_before_mas > 200
    )  # the 0.3" error
    assert rms < 15.0, f"astrometric rms of S/N>20 stars {rms:.1f} mas"
    assert catalog.table.meta["astrometry"]["rms_after_mas"] < 15.0


def test_star_galaxy_from_shapes(field, catalog, matched) -> None:
    idx, _, found = matched
    snr = np.asarray(catalog.table["snr"])[idx]
    good = found & (snr > 20)
    truth = np.asarray(field.truth["is_star"])[good]
    called = np.asarray(catalog.table["is_star"])[idx[good]]
    acc = (truth == called).mean()
    assert acc >= 0.85, f"star/galaxy accuracy {acc:.2f} on {good.sum()} sources"


def test_photometric_redshifts(field, catalog, matched) -> None:
    idx, _, found = matched
    tr = field.truth
    snr = np.asarray(catalog.table["snr"])[idx]
    gal = found & ~np.asarray(tr["is_star"]) & (snr > 20)
    assert gal.sum() >= 20
    zp = np.asarray(catalog.table["photoz"])[idx[gal]]
    zt = np.asarray(tr["z"])[gal]
    dz = (zp - zt) / (1 + zt)
    nmad = 1.4826 * np.median(np.abs(dz - np.median(dz)))
    outliers = np.mean(np.abs(dz) > 0.15)
    assert nmad < 0.05, f"photo-z NMAD {nmad:.3f}"
    assert outliers < 0.10, f"photo-z outlier fraction {outliers:.2f}"


def test_uncertainties_follow_noise_model(field, catalog) -> None:
    """Flux errors are from the error array: S/N of faint sources ~ flux / (sigma sqrt(area))."""
    t = catalog.table
    assert np.all(t["F158_flux_err"][np.isfinite(t["F158_flux_err"])] > 0)
    assert np.all(t["pos_err"][t["snr"] > 50] < 10 * u.mas)


def test_single_band_writes_products_atomically(field, tmp_path) -> None:
    img = CatalogImage(
        field.images["H158"],
        field.errors["H158"],
        field.wcs,
        "H158",
        psf=field.psfs["H158"],
        name="H158",
    )
    cat = single_band(img, reference=field.reference)
    urls = write_products(
        str(tmp_path / "l4"),
        "field_f158",
        catalog=cat.table,
        segmentation=cat.segmentation,
        wcs=cat.wcs,
    )
    table = read_catalog(urls["field_f158_cat.parquet"])
    segm = read_segmentation(urls["field_f158_segm.asdf"])
    assert len(table) == len(cat.table) > 30
    assert set(np.unique(segm)) - {0} == set(np.asarray(table["label"]))
    assert table["ra"].unit == u.deg
    assert sorted(p.name for p in (tmp_path / "l4").iterdir()) == [
        "field_f158_cat.parquet",
        "field_f158_segm.asdf",
    ]


def test_products_into_s3(field, s3_store) -> None:
    import s3fs

    img = CatalogImage(
        field.images["J129"], field.errors["J129"], field.wcs, "J129", psf=field.psfs["J129"]
    )
    cat = single_band(img)
    opts = s3_store.storage_options()
    urls = write_products(
        "s3://roman/catalogs-test/l4",
        "j129",
        catalog=cat.table,
        segmentation=cat.segmentation,
        wcs=cat.wcs,
        storage_options=opts,
    )
    back = read_catalog(urls["j129_cat.parquet"], storage_options=opts)
    assert len(back) == len(cat.table)
    fs = s3fs.S3FileSystem(**opts)
    assert not [p for p in fs.ls("roman/catalogs-test/l4") if p.endswith(".tmp")]


# ------------------------------------------------------------------ bad input
def test_image_without_wcs_is_refused(field) -> None:
    with pytest.raises(CatalogInputError, match="no WCS"):
        CatalogImage(field.images["H158"], field.errors["H158"], None, "H158")


def test_all_nan_image_is_refused(field) -> None:
    with pytest.raises(CatalogInputError, match="NaN"):
        CatalogImage(np.full((64, 64), np.nan), np.ones((64, 64)), field.wcs, "H158")


def test_missing_error_array_is_refused(field) -> None:
    with pytest.raises(CatalogInputError, match="no error array"):
        CatalogImage(field.images["H158"], None, field.wcs, "H158")


def test_mismatched_bands_are_refused(field) -> None:
    imgs = _images(field, ("H158", "J129"))
    dup = _images(field, ("H158",)) * 2
    with pytest.raises(CatalogInputError, match="mismatched bands"):
        multi_band(dup)
    small = CatalogImage(
        field.images["J129"][:200, :200],
        field.errors["J129"][:200, :200],
        field.wcs,
        "J129",
        psf=field.psfs["J129"],
    )
    with pytest.raises(CatalogInputError, match="mismatched bands"):
        multi_band([imgs[0], small])
    with pytest.raises(CatalogInputError, match="unknown Roman optical element"):
        multi_band(
            [
                CatalogImage(
                    field.images["H158"],
                    field.errors["H158"],
                    field.wcs,
                    "F999",
                    psf=field.psfs["H158"],
                )
            ]
        )


def test_failed_write_leaves_nothing(field, tmp_path) -> None:
    img = CatalogImage(
        field.images["H158"], field.errors["H158"], field.wcs, "H158", psf=field.psfs["H158"]
    )
    cat = single_band(img)

    class Unserialisable:
        pass

    from asdf.exceptions import AsdfSerializationError

    with pytest.raises(AsdfSerializationError):
        write_products(
            str(tmp_path / "l4"),
            "broken",
            catalog=cat.table,
            segmentation=cat.segmentation,
            wcs=Unserialisable(),
        )
    assert list((tmp_path / "l4").iterdir()) == []


@pytest.mark.parametrize(
    "suffix,fmt", [(".parquet", "parquet"), (".ecsv", "ascii.ecsv"), (".fits", "fits")]
)
def test_reference_catalog_read_in_each_format(tmp_path, suffix, fmt) -> None:
    from astropy.table import Table

    from platform_lib.catalogs import CatalogInputError, read_reference

    ref = Table({"ra": [10.0, 10.001], "dec": [-5.0, -5.001], "g_mag": [17.5, 18.25]})
    path = tmp_path / f"gaia{suffix}"
    ref.write(path, format=fmt)
    back = read_reference(str(path))
    assert list(back["ra"]) == [10.0, 10.001] and list(back["g_mag"]) == [17.5, 18.25]
    bad = tmp_path / f"nora{suffix}"
    Table({"x": [1.0]}).write(bad, format=fmt)
    with pytest.raises(CatalogInputError, match="no 'ra' column"):
        read_reference(str(bad))
