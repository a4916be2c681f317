"""Purity: false detections measured with the inverted-image check, and the two products.

A 768-pixel image of white noise (the test field's sky noise) with 300 faint point sources
(AB 25.5-27.5, around the 5-sigma depth of 26.3) is catalogued as it is and inverted: the
inverted image holds the same noise and no positive source, so what is found there is false.
The complete (default) product keeps every detection; the pure product cuts on
``detection_snr`` (the filtered image's peak significance). At every false-detection budget
that cut keeps at least as many real sources as a cut on Kron S/N does, and more at zero.
"""

from __future__ import annotations

import numpy as np
import pytest

from platform_lib.catalogs import CatalogImage, single_band
from platform_lib.catalogs.static import PURE_DETECTION_SNR

from .conftest import SKY_NOISE_UJY, make_wcs

N = 768


@pytest.fixture(scope="module")
def faint_field(field):
    rng = np.random.default_rng(5)
    psf = field.psfs["H158"]
    h = psf.shape[0] // 2
    n = 300
    x = rng.integers(h, N - h, n)
    y = rng.integers(h, N - h, n)
    mag = rng.uniform(25.5, 27.5, n)
    clean = np.zeros((N, N))
    for xi, yi, m in zip(x, y, mag):
        clean[yi - h : yi + h + 1, xi - h : xi + h + 1] += 10 ** ((23.9 - m) / 2.5) * psf
    noise = rng.normal(0, SKY_NOISE_UJY, (N, N))
    err = np.full((N, N), SKY_NOISE_UJY)
    cats = {}
    for name, data in (("image", clean + noise), ("inverted", -clean + noise)):
        img = CatalogImage(data, err, make_wcs(), "H158", psf=psf, name=name)
        cats[name] = single_band(img)
    return x, y, mag, cats


def _real(cat, x, y):
    t = cat.table
    d = np.hypot(np.asarray(t["x"])[:, None] - x[None, :], np.asarray(t["y"])[:, None] - y[None, :])
    return d.min(axis=1) < 1.5


def test_inverted_image_check_and_the_pure_product(faint_field) -> None:
    x, y, mag, cats = faint_field
    image, inverted = cats["image"], cats["inverted"]
    real = _real(image, x, y)
    n_false = len(inverted.table)
    pure_false = len(inverted.pure())
    pure = image.pure()
    print(
        f"\ncomplete: {len(image.table)} detections, {real.sum()} real, {n_false} on the "
        f"inverted image (purity ~{1 - n_false / len(image.table):.3f}); pure "
        f"(detection_snr >= {PURE_DETECTION_SNR:g}): {len(pure)} detections, "
        f"{pure_false} on the inverted image"
    )
    assert n_false > pure_false
    assert pure_false <= 1
    assert pure.meta["product"].startswith("pure")
    assert real.sum() > 50


def test_detection_snr_beats_kron_snr(faint_field) -> None:
    x, y, _, cats = faint_field
    image, inverted = cats["image"], cats["inverted"]
    real = _real(image, x, y)
    kept = {}
    for col in ("detection_snr", "snr"):
        noise = np.sort(np.asarray(inverted.table[col], float))[::-1]
        value = np.asarray(image.table[col], float)
        for budget in (0, 2, 5):
            cut = noise[budget] if budget < len(noise) else -np.inf
            kept[col, budget] = int((real & (value > cut)).sum())
    print(
        "\nreal sources kept at a false-detection budget of 0/2/5: detection_snr "
        + "/".join(str(kept["detection_snr", b]) for b in (0, 2, 5))
        + ", Kron S/N "
        + "/".join(str(kept["snr", b]) for b in (0, 2, 5))
    )
    for budget in (0, 2, 5):
        assert kept["detection_snr", budget] >= kept["snr", budget]
    assert kept["detection_snr", 0] > kept["snr", 0]


def test_faint_peaks_in_a_bright_neighbours_wings_leave_the_pure_product() -> None:
    """The cleaning drops a marginal detection beside a much brighter source, and only that."""
    import astropy.units as u
    from astropy.table import QTable

    from platform_lib.catalogs.static import (
        PURE_CLEAN_RADIUS_PIX,
        PURE_CLEAN_SNR,
        in_bright_wings,
    )

    near, far = 0.6 * PURE_CLEAN_RADIUS_PIX, 3 * PURE_CLEAN_RADIUS_PIX
    table = QTable(
        {
            # a bright galaxy; a marginal peak in its wing; a bright peak as close; an isolated
            # marginal source; two marginal sources of equal flux side by side
            "x": [100.0, 100 + near, 100 - near, 100 + far, 500.0, 500 + near],
            "y": [100.0] * 4 + [500.0, 500.0],
            "kron_flux": [50.0, 0.5, 20.0, 0.5, 0.5, 0.6] * u.uJy,
        }
    )
    marginal = PURE_DETECTION_SNR + 0.5 * (PURE_CLEAN_SNR - PURE_DETECTION_SNR)
    snr = np.array([80.0, marginal, 40.0, marginal, marginal, marginal])
    assert in_bright_wings(table, snr).tolist() == [False, True, False, False, False, False]
