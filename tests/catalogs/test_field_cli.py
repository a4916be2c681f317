"""The store-facing layer (platform_lib.catalogs.field + ``roman-platform catalog``) on real
products: the data area's sample survey (romanisim-style L2 of one detector cutout, two optical
elements, two dithered epochs, with its PSF library), on a local folder and on real S3 (SeaweedFS).

The sample's L2 products are not flux calibrated (no photom step; ``conversion_megajanskys`` is
the -999999 placeholder), so single-band catalogs come out in DN/s and multi-band ones are
refused. Calibrated copies (a positive ``conversion_megajanskys`` written into the product's
own metadata) exercise the multi-band path. The sample's epochs are dithered, i.e. not
rectified onto one grid, so difference imaging on them is refused; rectified epochs are made
from epoch 1 with fresh noise (and one injected point source) in set-up.
"""

from __future__ import annotations

import os
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest

from platform_lib.catalogs.outputs import read_catalog, read_segmentation
from platform_lib.cli import main

CONVERSION = 0.5  # MJy/sr per DN/s written into the calibrated copies (any positive value)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["catalog", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _copy_with(
    src: Path, dst: Path, *, conversion: float | None = None, data=None, mjd: float | None = None
) -> None:
    """A modified copy of an L2 product, saved as roman_datamodels writes it."""
    import roman_datamodels as rdm
    from astropy.time import Time

    dst.parent.mkdir(parents=True, exist_ok=True)
    with rdm.open(src) as model:
        if conversion is not None:
            model.meta.photometry.conversion_megajanskys = conversion
        if data is not None:
            model.data = data.astype(model.data.dtype)
        if mjd is not None:
            model.meta.exposure.start_time = Time(mjd, format="mjd", scale="utc")
        model.meta.filename = dst.name
        model.save(dst)


@pytest.fixture(scope="module")
def single(sample_store, dask_client):
    """Epoch-1 F158 single-band catalog made through the CLI (reused by several tests)."""
    code = main(
        [
            "catalog",
            "static",
            "--store",
            sample_store.root,
            "--name",
            "e1_f158",
            "--out",
            "L4",
            sample_store.products[(1, "F158")],
        ]
    )
    assert code == 0
    return read_catalog(os.path.join(sample_store.root, "L4", "e1_f158_cat.parquet"))


def test_static_single_product(sample_store, single) -> None:
    t = single
    assert len(t) >= 5, "the sample cutout holds a few tens of stars"
    assert t.meta["flux_unit"] == "DN/s"  # honest about the missing flux calibration
    assert t["kron_flux"].unit == u.DN / u.s and np.all(np.isnan(t["kron_abmag"]))
    assert t.meta["inputs"] == [sample_store.products[(1, "F158")]]
    segm = read_segmentation(os.path.join(sample_store.root, "L4", "e1_f158_segm.asdf"))
    assert segm.shape == (128, 128)
    assert set(np.unique(segm)) - {0} == set(np.asarray(t["label"]))
    # Positions come through the product's gwcs: inside the cutout's footprint on the sky.
    import roman_datamodels as rdm

    with rdm.open(os.path.join(sample_store.root, sample_store.products[(1, "F158")])) as m:
        ra, dec = m.meta.wcs(np.asarray(t["x"]), np.asarray(t["y"]))
    assert np.allclose(ra, u.Quantity(t["ra"], u.deg).value, atol=1e-9)
    assert np.allclose(dec, u.Quantity(t["dec"], u.deg).value, atol=1e-9)


def test_multi_band_refuses_uncalibrated_products(sample_store, dask_client, capsys) -> None:
    code, out, err = _run(
        capsys,
        "static",
        "--store",
        sample_store.root,
        "--name",
        "raw_mb",
        "--out",
        "L4-raw",
        sample_store.products[(1, "F158")],
        sample_store.products[(1, "F087")],
    )
    assert code == 1
    assert "flux-calibrated" in err and "F158" in err
    assert not (Path(sample_store.root) / "L4-raw").exists() or not any(
        (Path(sample_store.root) / "L4-raw").iterdir()
    )


def test_calibrated_products_single_and_multi_band(
    sample_store, single, dask_client, capsys
) -> None:
    root = Path(sample_store.root)
    cal = {}
    for oe in ("F158", "F087"):
        src = root / sample_store.products[(1, oe)]
        rel = f"calibrated/{src.name}"
        _copy_with(src, root / rel, conversion=CONVERSION)
        cal[oe] = rel
    code, out, err = _run(
        capsys, "static", "--store", sample_store.root, "--name", "cal_f158", cal["F158"]
    )
    assert code == 0, err
    t = read_catalog(str(root / "L4" / "cal_f158_cat.parquet"))
    # Same pixels, same detections; fluxes scaled by conversion x pixel area (sr) x 1e12 uJy/MJy.
    import roman_datamodels as rdm

    with rdm.open(root / cal["F158"]) as m:
        to_ujy = CONVERSION * float(m.meta.photometry.pixel_area) * 1e12
    assert t.meta["flux_unit"] == "uJy" and len(t) == len(single)
    ratio = t["kron_flux"].value / single["kron_flux"].value
    assert np.allclose(ratio, to_ujy, rtol=1e-6)
    bright = t["kron_flux"].value > 0
    assert np.all(np.isfinite(t["kron_abmag"][bright]))

    code, out, err = _run(
        capsys, "static", "--store", sample_store.root, "--name", "cal_mb", cal["F158"], cal["F087"]
    )
    assert code == 0, err
    assert out.split() == [
        str(root / "L4" / "cal_mb_cat.parquet"),
        str(root / "L4" / "cal_mb_segm.asdf"),
    ]
    mb = read_catalog(str(root / "L4" / "cal_mb_cat.parquet"))
    assert mb.meta["bands"] == ["F158", "F087"]
    for col in ("F158_flux", "F087_flux", "F158_matched_flux", "F087_psf_flux", "photoz"):
        assert col in mb.colnames
    assert mb["F158_flux"].unit == u.uJy
    # Detection on the PSF-matched pair covers every clear (S/N > 10) single-band source with a
    # segment; most keep their centroid, but a pair of stars of different colours a few pixels
    # apart blends differently in F158 alone and in F158+F087 (the sample has such pairs).
    from astropy.coordinates import SkyCoord

    clear = t[np.asarray(t["snr"]) > 10]
    assert len(clear) >= 5
    segm = read_segmentation(str(root / "L4" / "cal_mb_segm.asdf"))
    xi, yi = (
        np.round(np.asarray(clear["x"])).astype(int),
        np.round(np.asarray(clear["y"])).astype(int),
    )
    assert np.all(segm[yi, xi] > 0)
    _, sep, _ = SkyCoord(clear["ra"], clear["dec"]).match_to_catalog_sky(
        SkyCoord(mb["ra"], mb["dec"])
    )
    assert np.mean(sep.arcsec < 0.2) >= 0.8, sep.arcsec


def test_missing_product_is_a_clear_error_and_writes_nothing(
    sample_store, dask_client, capsys
) -> None:
    out_dir = Path(sample_store.root) / "L4-missing"
    code, out, err = _run(
        capsys,
        "static",
        "--store",
        sample_store.root,
        "--name",
        "nothing",
        "--out",
        "L4-missing",
        "sample/L2/no_such_product_cal.asdf",
    )
    assert code == 1
    assert "no_such_product_cal.asdf" in err
    assert not out_dir.exists() or not any(out_dir.iterdir())
    code, out, err = _run(
        capsys,
        "diff",
        "--store",
        sample_store.root,
        "--name",
        "nothing",
        "--out",
        "L4-missing",
        sample_store.products[(1, "F158")],
        "sample/L2/no_such_product_cal.asdf",
    )
    assert code == 1 and "no_such_product_cal.asdf" in err
    assert not out_dir.exists() or not any(out_dir.iterdir())


def _rectified_epochs(sample_store) -> tuple[list[str], tuple[int, int, float]]:
    """Three epochs on epoch 1's grid: the original, a repeat with fresh noise, and a repeat
    with fresh noise plus a point source (library PSF) that the difference must find."""
    import roman_datamodels as rdm

    from platform_lib.catalogs.field import library_psf_image

    root = Path(sample_store.root)
    src = root / sample_store.products[(1, "F158")]
    with rdm.open(src) as m:
        data = np.asarray(m.data, float)
        err = np.asarray(m.err, float)
        mjd0 = float(m.meta.exposure.start_time.mjd)
    rng = np.random.default_rng(12)
    # The emptiest 15x15 box in the inner cutout: a place without a star.
    best, where = np.inf, (64, 64)
    for y in range(24, 104, 4):
        for x in range(24, 104, 4):
            v = np.nanmax(np.abs(data[y - 7 : y + 8, x - 7 : x + 8]))
            if v < best:
                best, where = v, (x, y)
    x0, y0 = where
    psf = library_psf_image("WFI01", "F158", store=sample_store.root)
    h = psf.shape[0] // 2
    stamp = np.zeros_like(data)
    ys, xs = (
        slice(max(0, y0 - h), min(128, y0 + h + 1)),
        slice(max(0, x0 - h), min(128, x0 + h + 1)),
    )
    stamp[ys, xs] = psf[
        h - (y0 - ys.start) : h + (ys.stop - y0), h - (x0 - xs.start) : h + (xs.stop - x0)
    ]
    # Flux for a PSF-weighted S/N of 25 against the difference's noise (sqrt(2) x err).
    sigma = np.sqrt(2) * err
    flux = 25.0 / np.sqrt(np.nansum(stamp**2 / sigma**2))
    paths = [sample_store.products[(1, "F158")]]
    for k, extra in ((1, 0.0), (2, flux)):
        rel = f"rectified/e{k}_f158_cal.asdf"
        _copy_with(
            src,
            root / rel,
            data=data + rng.normal(0, 1, data.shape) * err + extra * stamp,
            mjd=mjd0 + k,
        )
        paths.append(rel)
    return paths, (x0, y0, flux)


def test_difference_imaging(sample_store, dask_client, capsys) -> None:
    root = Path(sample_store.root)
    # The sample's own epochs are dithered: not one pixel grid, refused with the reason.
    code, out, err = _run(
        capsys,
        "diff",
        "--store",
        sample_store.root,
        "--name",
        "dithered",
        "--out",
        "L4-dithered",
        sample_store.products[(1, "F158")],
        sample_store.products[(2, "F158")],
    )
    assert code == 1 and "pixel grid" in err
    assert not (root / "L4-dithered").exists() or not any((root / "L4-dithered").iterdir())

    paths, (x0, y0, flux) = _rectified_epochs(sample_store)
    code, out, err = _run(capsys, "diff", "--store", sample_store.root, "--name", "rect", *paths)
    assert code == 0, err
    cat = read_catalog(str(root / "L4" / "rect_diff_cat.parquet"))
    assert cat.meta["n_template_images"] == 2 and cat.meta["science_image"] == paths[-1]
    assert cat.meta["flux_unit"] == "DN/s" and cat["flux"].unit == u.DN / u.s
    hit = np.hypot(np.asarray(cat["x"]) - x0, np.asarray(cat["y"]) - y0) < 1.5
    assert hit.sum() == 1 and len(cat) == 1, (
        f"expected only the injected source at ({x0}, {y0}): {cat}"
    )
    assert cat["sign"][0] == 1
    assert 0.6 * flux < float(cat["flux"][0]) < 1.2 * flux


def test_lightcurves_and_variables(sample_store, single, dask_client, capsys) -> None:
    products = [sample_store.products[(1, "F158")], sample_store.products[(2, "F158")]]
    code, out, err = _run(
        capsys,
        "lightcurves",
        "--store",
        sample_store.root,
        "--catalog",
        "L4/e1_f158_cat.parquet",
        "--lightcurve-store",
        "variability",
        *products,
    )
    assert code == 0, err
    from platform_lib.catalogs.variability import LightCurveStore

    lcs = LightCurveStore(os.path.join(sample_store.root, "variability"))
    idx = lcs.indices()
    assert set(idx["source_id"]) <= set(np.asarray(single["label"]))
    assert set(idx["flux_unit"]) == {"DN/s"}  # the sample is not flux calibrated
    # The epochs are dithered by a few arcseconds: most sources fall on both, none on more.
    assert np.mean(idx["n_epochs"] == 2) > 0.5 and idx["n_epochs"].max() == 2
    assert f"{int(np.sum(idx['n_epochs']))} measurements" in out
    # A constant sky (the sample has no variables): chi2 of bright sources near 1, not hundreds.
    assert np.median(idx["chi2_red"]) < 10

    src = idx[np.argmax(idx["mean_flux"])]
    code, out, err = _run(
        capsys,
        "variables",
        "--store",
        sample_store.root,
        "--lightcurve-store",
        "variability",
        "--cone",
        repr(float(src["ra"])),
        repr(float(src["dec"])),
        "0.3",
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["source_id", "band"]
    rows = [line.split() for line in lines[2:] if line.strip()]
    assert [int(r[0]) for r in rows] == [int(src["source_id"])]
    code, out, err = _run(
        capsys,
        "variables",
        "--store",
        sample_store.root,
        "--lightcurve-store",
        "variability",
        "--min-chi2",
        "1e9",
    )
    assert (
        code == 0 and len([line for line in out.splitlines() if line.strip()]) <= 2
    )  # header only


# ------------------------------------------------------------------ real S3
@pytest.fixture(scope="module")
def s3_sample(sample_store, s3_store, monkeypatch_module):
    """The sample's F158 products and PSF library copied into S3, and the environment a
    notebook gets (ROMAN_DATA_URL etc.) set for the CLI."""
    from platform_lib.data.store import get_store

    env = s3_store.client_env(prefix="catalogs-sample")
    for k, v in env.items():
        monkeypatch_module.setenv(k, v)
    store = get_store(
        env["ROMAN_DATA_URL"],
        endpoint=env["ROMAN_DATA_S3_ENDPOINT"],
        key=env["AWS_ACCESS_KEY_ID"],
        secret=env["AWS_SECRET_ACCESS_KEY"],
    )
    for rel in (sample_store.products[(1, "F158")], sample_store.products[(2, "F158")]):
        store.put_file(os.path.join(sample_store.root, rel), rel)
    for rel in sample_store.psf:  # the library's default place (no index needed there)
        store.put_file(os.path.join(sample_store.root, rel), "psf/" + rel.rsplit("/", 1)[1])
    return store


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_static_and_lightcurves_on_s3(sample_store, s3_sample, dask_client, capsys) -> None:
    store = s3_sample
    p1, p2 = sample_store.products[(1, "F158")], sample_store.products[(2, "F158")]
    code, out, err = _run(capsys, "static", "--name", "e1_f158", p1)  # store from $ROMAN_DATA_URL
    assert code == 0, err
    assert out.split()[0] == store.url("L4/e1_f158_cat.parquet")
    t = read_catalog(store.url("L4/e1_f158_cat.parquet"), store.storage_options)
    local = (
        read_catalog(os.path.join(sample_store.root, "L4", "e1_f158_cat.parquet"))
        if (Path(sample_store.root) / "L4" / "e1_f158_cat.parquet").exists()
        else None
    )
    assert len(t) >= 5
    if local is not None:  # same product, same catalog, wherever it is stored
        assert np.allclose(t["kron_flux"].value, local["kron_flux"].value)
    code, out, err = _run(capsys, "lightcurves", "--catalog", "L4/e1_f158_cat.parquet", p1, p2)
    assert code == 0, err
    files = store.walk_files("variability")
    ingest = [f for f in files if f.startswith("variability/lightcurves/")]
    assert ingest and all(f.endswith(".parquet") for f in ingest)  # no temporaries left
    for kind in ("lightcurves", "indices"):  # both HATS collections published into S3
        assert f"variability/hats/{kind}/collection.properties" in files
    code, out, err = _run(capsys, "variables", "--lightcurve-store", "nothing-here")
    assert code == 1 and "no published light curves" in err
    code, out, err = _run(capsys, "variables", "--min-chi2", "0")
    assert code == 0 and len(out.splitlines()) > 2

    code, out, err = _run(
        capsys, "static", "--name", "missing", "--out", "L4-missing", "sample/L2/nope_cal.asdf"
    )
    assert code == 1 and "nope_cal.asdf" in err
    assert not store.walk_files("L4-missing")


def test_one_field_starts_no_cluster(sample_store, monkeypatch) -> None:
    """The light path: a catalog of one image runs in this process; asking for a Dask client
    (which would start a cluster) fails the test."""
    import platform_lib.compute as compute
    from platform_lib.catalogs.field import catalog_fields

    def no_cluster(*args, **kwargs):
        raise AssertionError("a Dask cluster was started for one image")

    monkeypatch.setattr(compute, "get_client", no_cluster)
    out = catalog_fields(
        {"light": [sample_store.products[(1, "F158")]]},
        os.path.join(sample_store.root, "L4light"),
        store=sample_store.root,
    )
    assert not isinstance(out["light"], BaseException), out["light"]
    cat = read_catalog(os.path.join(sample_store.root, "L4light", "light_cat.parquet"))
    assert len(cat) > 10 and "flux_total" in cat.colnames
