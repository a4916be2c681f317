"""The faster apportioning is statistically the same as romanisim's, and follows the MA table."""

from __future__ import annotations

import numpy as np
import pytest
from romanisim import l1

from platform_lib.simulate.apportion import apportion_counts_to_resultants

SHAPE = (128, 128)  # 16384 pixels: relative standard error of a variance ~ sqrt(2/N) = 1.1%


def _moments(res: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat = res.reshape(len(res), -1).astype(float)
    return flat.mean(axis=1), flat.var(axis=1), np.cov(flat)


@pytest.mark.parametrize("table", [4, 109])
@pytest.mark.parametrize("level", [150, 4000])
def test_same_law_as_romanisim(table: int, level: int) -> None:
    """Means, variances and covariances of all resultants agree with romanisim's (same input).

    4000 electrons per pixel exceeds the inversion tables of a 128x128 image, so that case
    exercises the exact multinomial fall-back too.
    """
    tij = l1.read_pattern_to_tij(table)
    counts = np.full(SHAPE, level, dtype=np.float32)
    ref, _ = l1.apportion_counts_to_resultants(
        counts, tij, seed=5, pedestal=0, pedestal_extra_noise=None
    )
    ours, _ = apportion_counts_to_resultants(counts, tij, seed=6, pedestal=0)
    m_ref, v_ref, c_ref = _moments(ref)
    m_our, v_our, c_our = _moments(ours)
    n = counts.size
    # means: within 5 standard errors
    assert np.all(np.abs(m_our - m_ref) < 5 * np.sqrt((v_ref + v_our) / n) + 1e-6)
    # variances (the last resultant has none: every electron has arrived by then)
    has_var = v_ref > 1e-6
    assert np.all(np.abs(v_our[has_var] / v_ref[has_var] - 1) < 5 * np.sqrt(2 * 2 / n))
    # covariances between resultants, relative to the largest
    assert np.max(np.abs(c_our - c_ref)) / np.max(c_ref) < 0.05
    # and every pixel ends with exactly its electrons
    assert np.all(ours[-1] == counts)


@pytest.mark.parametrize("table", [4, 3, 110])
def test_resultant_means_follow_ma_table(table: int) -> None:
    """E[resultant i] = total * mean(read times of i) / exposure time, for uniform arrivals."""
    tij = l1.read_pattern_to_tij(table)
    total = 300.0
    counts = np.random.default_rng(1).poisson(total, SHAPE).astype(np.float32)
    ours, _ = apportion_counts_to_resultants(counts, tij, seed=2, pedestal=0)
    texp = tij[-1][-1]
    expected = np.array([np.mean(t) / texp for t in tij]) * counts.mean()
    measured = ours.reshape(len(tij), -1).mean(axis=1)
    # Poisson standard error of each mean is below sqrt(total / n) ~ 0.14 electrons
    assert np.allclose(measured, expected, atol=5 * np.sqrt(total / counts.size))


def test_rejects_non_integer_counts() -> None:
    with pytest.raises(ValueError, match="integer"):
        apportion_counts_to_resultants(np.full((8, 8), 1.5), l1.read_pattern_to_tij(4))
