"""Photometry-based variability and difference imaging on simulated epochs with known truth."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest

from platform_lib.catalogs import CatalogImage, CatalogInputError
from platform_lib.catalogs.diffim import difference_catalog, split_template
from platform_lib.catalogs.variability import LightCurveStore, build_lightcurves, forced_photometry

# chi2_red of a constant star is ~1 (+ slow growth with neighbours' variability through the PSF
# wings); a 0.3 mag sinusoid at S/N > 50 gives chi2_red in the hundreds. 10 separates them with
# a wide margin on both sides; docs/catalogs.md shows both distributions.
CHI2_VARIABLE = 10.0


def _images(epochs):
    return [
        CatalogImage(d, e, epochs.wcs, "F158", psf=epochs.psf, mjd=m, name=f"epoch{k}")
        for k, (d, e, m) in enumerate(zip(epochs.images, epochs.errors, epochs.mjds))
    ]


def _loader(image):
    return lambda: image


@pytest.fixture(scope="module")
def store_and_indices(epochs, tmp_path_factory):
    store = LightCurveStore(str(tmp_path_factory.mktemp("lc") / "lightcurves"))
    imgs = _images(epochs)
    items = [(im.name, _loader(im)) for im in imgs]

    def broken():
        raise OSError("simulated unreadable exposure")

    items.append(("epoch-broken", broken))
    indices = build_lightcurves(epochs.sources, items, store)
    return store, indices


def test_variables_recovered_and_constants_quiet(epochs, store_and_indices) -> None:
    _, indices = store_and_indices
    indices.sort("source_id")
    assert list(indices["source_id"]) == list(epochs.sources["source_id"])
    assert np.all(indices["n_epochs"] == len(epochs.images))
    var = np.asarray(epochs.sources["variable"])
    flagged = np.asarray(indices["chi2_red"]) > CHI2_VARIABLE
    recovery = flagged[var].mean()
    false_positive = flagged[~var].mean()
    assert recovery == 1.0, f"variable recovery {recovery:.2f}"
    assert false_positive <= 0.1, f"false-positive rate {false_positive:.2f}"
    chi2_const = np.asarray(indices["chi2_red"])[~var & ~flagged]
    assert 0.3 < np.median(chi2_const) < 2.0  # the error model is honest


def test_failed_image_is_reported_not_fatal(store_and_indices) -> None:
    _, indices = store_and_indices
    assert "epoch-broken" in indices.meta["failed_images"]
    assert "unreadable" in indices.meta["failed_images"]["epoch-broken"]


def test_forced_fluxes_match_truth(epochs) -> None:
    img = _images(epochs)[0]
    rows = forced_photometry(epochs.sources, img, "epoch0")
    const = ~np.asarray(epochs.sources["variable"])[rows["source_id"]]
    ratio = (
        np.asarray(rows["flux"])[const]
        / np.asarray(epochs.sources["flux"])[rows["source_id"]][const]
    )
    # The PSF stamp misses ~2.5% of the light in Roman's far wings (see test_static).
    assert 0.95 < np.median(ratio) < 1.0


def test_store_queries_by_position_and_index(epochs, store_and_indices) -> None:
    store, _ = store_and_indices
    src = epochs.sources[0]
    cone = store.lightcurves(float(src["ra"]), float(src["dec"]), 0.5)
    assert set(cone["source_id"]) == {int(src["source_id"])}
    assert len(cone) == len(epochs.images)
    loud = store.indices(min_chi2=CHI2_VARIABLE)
    assert set(np.asarray(epochs.sources["source_id"])[epochs.sources["variable"]]) <= set(
        loud["source_id"]
    )
    near = store.indices(ra=float(src["ra"]), dec=float(src["dec"]), radius_arcsec=0.5)
    assert list(near["source_id"]) == [int(src["source_id"])]


def test_rerun_of_a_batch_is_idempotent(epochs, tmp_path) -> None:
    store = LightCurveStore(str(tmp_path / "lc"))
    img = _images(epochs)[0]
    rows = forced_photometry(epochs.sources, img, img.name)
    store.append_lightcurves(rows, img.name)
    store.append_lightcurves(rows, img.name)
    with pytest.raises(CatalogInputError, match="no published light curves"):
        store.lightcurves()
    store.publish()
    store.publish()  # republishing is idempotent too
    assert len(store.lightcurves()) == len(rows)
    assert len(store.ingested()) == len(rows)


def test_hats_collection_is_plain_lsdb(epochs, store_and_indices) -> None:
    """The published collection opens with lsdb alone and holds the ingest files' rows."""
    import lsdb

    store, _ = store_and_indices
    ingest = store.ingested()
    src = epochs.sources[3]
    sid = int(src["source_id"])
    cat = lsdb.open_catalog(store.collection_url("lightcurves"))
    assert cat.margin is not None  # the collection's margin cache comes with it
    found = cat.cone_search(float(src["ra"]), float(src["dec"]), 1.0).compute(progress_bar=False)
    found = found[found["source_id"] == sid].sort_values("mjd")
    mine = ingest[ingest["source_id"] == sid]
    mine.sort("mjd")
    assert len(found) == len(mine) == len(epochs.images)
    assert list(found["image_id"]) == list(mine["image_id"])
    assert np.array_equal(found["flux"].to_numpy(), np.asarray(mine["flux"]))
    assert np.array_equal(found["flux_err"].to_numpy(), np.asarray(mine["flux_err"]))
    # the store's own one-source read gives the same light curve, by position or by id alone
    for lc in (
        store.lightcurve(sid, ra=float(src["ra"]), dec=float(src["dec"])),
        store.lightcurve(sid),
    ):
        assert list(lc["image_id"]) == list(mine["image_id"])
        assert np.array_equal(np.asarray(lc["flux"]), np.asarray(mine["flux"]))
        assert np.all(np.diff(np.asarray(lc["mjd"])) > 0)
    assert len(store.lightcurves()) == len(ingest)
    with pytest.raises(CatalogInputError, match="a cone needs"):
        store.lightcurves(float(src["ra"]))


def test_difference_imaging_finds_the_transient(epochs) -> None:
    cat = difference_catalog(_images(epochs), threshold=5.0)
    tx, ty, tflux = epochs.transient
    d = np.hypot(np.asarray(cat["x"]) - tx, np.asarray(cat["y"]) - ty)
    hit = d < 1.5
    assert hit.sum() == 1, f"transient not found once: {cat}"
    assert cat["sign"][hit][0] == 1
    # Integer-pixel PSF photometry of an undersampled PSF loses some flux to pixel phase.
    assert 0.6 * tflux < cat["flux"][hit][0].to_value(u.uJy) < 1.1 * tflux
    # Every other detection is a real variable (which changed between template and last epoch).
    sx, sy = np.asarray(epochs.sources["x"]), np.asarray(epochs.sources["y"])
    var = np.asarray(epochs.sources["variable"])
    others = cat[~hit]
    for x, y in zip(others["x"], others["y"]):
        nearest = np.argmin(np.hypot(sx - x, sy - y))
        assert var[nearest] and np.hypot(sx[nearest] - x, sy[nearest] - y) < 1.5, (
            "false positive in difference"
        )
    assert cat.meta["n_template_images"] == len(epochs.images) - 1
    assert cat.meta["science_image"] == f"epoch{len(epochs.images) - 1}"


def test_difference_imaging_bad_input(epochs) -> None:
    imgs = _images(epochs)
    with pytest.raises(CatalogInputError, match="at least two"):
        split_template(imgs[:1])
    other_band = CatalogImage(
        epochs.images[0], epochs.errors[0], epochs.wcs, "F062", psf=epochs.psf, mjd=70000.0
    )
    with pytest.raises(CatalogInputError, match="mismatched bands"):
        difference_catalog([*imgs[:2], other_band])
    no_time = CatalogImage(epochs.images[0], epochs.errors[0], epochs.wcs, "F158", psf=epochs.psf)
    with pytest.raises(CatalogInputError, match="observation time"):
        difference_catalog([imgs[0], no_time])


def test_indices_never_mix_flux_units() -> None:
    """A calibrated (uJy) and an uncalibrated (DN/s) image of one band: two light curves."""
    from astropy.table import Table

    from platform_lib.catalogs.variability import variability_indices

    rows = Table(
        {
            "source_id": [7] * 6,
            "ra": [1.0] * 6,
            "dec": [2.0] * 6,
            "image_id": [f"i{k}" for k in range(6)],
            "band": ["F158"] * 6,
            "flux_unit": ["uJy"] * 3 + ["DN/s"] * 3,
            "mjd": np.arange(6.0),
            "flux": [10.0, 10.1, 9.9, 300.0, 303.0, 297.0],
            "flux_err": [0.1] * 3 + [3.0] * 3,
        }
    )
    idx = variability_indices(rows)
    idx.sort("flux_unit")
    assert list(idx["flux_unit"]) == ["DN/s", "uJy"] and list(idx["n_epochs"]) == [3, 3]
    assert np.allclose(idx["mean_flux"], [300.0, 10.0]) and np.all(idx["chi2_red"] < 2)
