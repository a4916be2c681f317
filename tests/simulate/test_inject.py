"""Injected sources are recovered at their positions; the inputs-vs-outputs table pairs them."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from photutils.detection import DAOStarFinder

from platform_lib.simulate import (
    MosaicSpec,
    inject,
    inject_file,
    match_catalogs,
    simulate_mosaic,
    sources,
    write_product,
)


def _detect(data: np.ndarray, fwhm: float, nsigma: float = 20.0) -> Table:
    bkg = np.median(data)
    sigma = 1.4826 * np.median(np.abs(data - bkg))
    found = DAOStarFinder(fwhm=fwhm, threshold=nsigma * sigma)(data - bkg)
    return found if found is not None else Table(names=("x_centroid", "y_centroid"))


def _grid_catalog(model, element: str, pixels: list[tuple[float, float]], mag: float):
    ra, dec = model.meta.wcs(np.array([p[0] for p in pixels]), np.array([p[1] for p in pixels]))
    return sources(
        np.atleast_1d(ra), np.atleast_1d(dec), [mag] * len(pixels), elements=[element], first_id=100
    )


def test_inject_into_l2_recovered_at_positions(star_exposure, tmp_path) -> None:
    """Four stars injected into the simulated L2 cutout are found within 0.3 px of the truth;
    the one already there is not mistaken for an injected one."""
    spec, _, sim = star_exposure
    from roman_datamodels import datamodels as dm

    model = dm.ImageModel(sim.model)
    pixels = [(25.3, 30.7), (100.2, 28.9), (30.6, 97.1), (98.8, 101.4)]
    cat = _grid_catalog(model, "F158", pixels, 19.5)
    new, truth = inject(model, cat, seed=4, detector_offset=(spec.footprint.x0, spec.footprint.y0))
    assert np.allclose(truth["x"], [p[0] for p in pixels], atol=1e-3)
    found = _detect(np.asarray(new.data, dtype=float), fwhm=2.0)
    before = _detect(np.asarray(model.data, dtype=float), fwhm=2.0)
    matched = match_catalogs(
        truth,
        found,
        by="pixel",
        radius=1.0,
        input_cols=("x", "y"),
        output_cols=("x_centroid", "y_centroid"),
    )
    assert matched["recovered"].all()
    assert float(np.max(matched["separation"])) < 0.3
    assert matched.meta["match"]["completeness"] == 1.0
    # nothing injected near the original star, and the input model is unchanged
    assert len(found) == len(before) + len(pixels)
    assert not np.array_equal(np.asarray(new.data), np.asarray(model.data))
    # the injected flux is there: background-subtracted 7-px aperture sums scale as the fluxes
    data = np.asarray(new.data, dtype=float) - np.asarray(model.data, dtype=float)
    yy, xx = np.mgrid[: data.shape[0], : data.shape[1]]
    sums = [data[np.hypot(xx - x, yy - y) < 7].sum() for x, y in pixels]
    assert np.std(sums) / np.mean(sums) < 0.05

    # the file path: write the L2, inject from the file, truth beside the output
    paths = write_product(sim, str(tmp_path), spec.filename)
    out = inject_file(paths["image"], cat, str(tmp_path / "inj"), seed=4)
    assert Table.read(out["truth"], format="ascii.ecsv")["source_id"].tolist() == [
        100,
        101,
        102,
        103,
    ]


def test_inject_into_l3_recovered() -> None:
    spec = MosaicSpec(optical_element="F129", ra=150.0, dec=2.0, shape=(96, 96), seed=5)
    base = simulate_mosaic(sources([150.0], [2.0], [30.0], elements=["F129"])[:0], spec)
    from roman_datamodels import datamodels as dm

    model = dm.MosaicModel(base.model)
    pixels = [(20.4, 20.2), (70.7, 25.5), (40.1, 75.8)]
    cat = _grid_catalog(model, "F129", pixels, 20.0)
    new, truth = inject(model, cat, seed=1)
    found = _detect(np.asarray(new.data, dtype=float), fwhm=3.0)
    matched = match_catalogs(
        truth,
        found,
        by="pixel",
        radius=1.0,
        input_cols=("x", "y"),
        output_cols=("x_centroid", "y_centroid"),
    )
    assert matched["recovered"].all() and float(np.max(matched["separation"])) < 0.3


def test_match_catalogs_on_sky_keeps_unmatched_inputs() -> None:
    inputs = sources([10.0, 10.001, 10.002], [5.0, 5.0, 5.0], [20, 21, 22], elements=["F158"])
    outputs = Table(
        {"ra": [10.0 + 0.05 / 3600, 10.001], "dec": [5.0, 5.0 + 0.1 / 3600], "flux": [1.0, 2.0]}
    )
    m = match_catalogs(inputs, outputs, radius=0.2)
    assert m["recovered"].tolist() == [True, True, False]
    assert m["out_flux"].mask.tolist() == [False, False, True]
    assert m["separation"][0] == pytest.approx(0.05 * np.cos(np.radians(5)), rel=1e-3)
    assert m.meta["match"]["completeness"] == pytest.approx(2 / 3)
