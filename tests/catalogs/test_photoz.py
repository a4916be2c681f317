"""Template-fitting photo-z on exact template colours (the algorithm, without imaging noise)."""

from __future__ import annotations

import numpy as np
import pytest

from platform_lib.catalogs import CatalogInputError, photometric_redshifts, roman_bands
from platform_lib.catalogs.photoz import model_fluxes


def test_roman_bands_are_the_imaging_elements() -> None:
    assert {"F062", "F087", "F106", "F129", "F158", "F184", "F213", "F146"} <= set(roman_bands())


def test_recovers_redshift_of_noisy_template_photometry() -> None:
    rng = np.random.default_rng(3)
    bands = ["F062", "F087", "F106", "F129", "F158", "F184", "F213"]
    z_true = rng.uniform(0.1, 3.0, 40)
    t_idx = rng.integers(0, 4, 40) * 4  # the four base CWW templates in the template list
    grid = np.round(z_true, 2)
    models = model_fluxes(bands, grid)
    f = np.array([models[t, i] for i, t in enumerate(t_idx)]) * rng.uniform(0.5, 2.0, (40, 1))
    err = 0.03 * f
    f_noisy = f + rng.normal(0, 1, f.shape) * err
    out = photometric_redshifts(f_noisy, err, bands)
    dz = (np.asarray(out["photoz"]) - z_true) / (1 + z_true)
    assert np.mean(np.abs(dz) > 0.15) <= 0.05
    assert 1.4826 * np.median(np.abs(dz)) < 0.03
    inside = (np.asarray(out["photoz_lo"]) <= z_true + 0.01) & (
        z_true - 0.01 <= np.asarray(out["photoz_hi"])
    )
    assert inside.mean() > 0.6  # the 68% interval covers the truth about as often as it should


def test_too_few_bands_give_nan_and_bad_bands_fail() -> None:
    out = photometric_redshifts(
        np.array([[1.0, np.nan, np.nan]]), np.array([[0.1, 0.1, 0.1]]), ["F106", "F129", "F158"]
    )
    assert np.isnan(out["photoz"][0])
    with pytest.raises(CatalogInputError, match="unknown Roman optical element"):
        photometric_redshifts(np.ones((1, 2)), np.ones((1, 2)), ["F106", "V555"])
    with pytest.raises(CatalogInputError, match="n_sources, n_bands"):
        photometric_redshifts(np.ones((1, 3)), np.ones((1, 3)), ["F106", "F129"])
