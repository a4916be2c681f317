"""Deblending only the segments that can split gives photutils' full deblending, exactly."""

from __future__ import annotations

import numpy as np
import pytest
from photutils.segmentation import SourceFinder

from platform_lib.catalogs.detection import DetectionConfig, detect, multi_peak_labels


def _blended_field(seed: int = 5, n: int = 400, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    img = np.zeros((size, size))
    # close pairs and single sources, some faint, so that segments of one, two and more peaks occur
    x = rng.uniform(8, size - 8, n)
    y = rng.uniform(8, size - 8, n)
    for k in range(n):
        s = rng.uniform(1.0, 3.0)
        img += rng.uniform(0.05, 5.0) * np.exp(-((xx - x[k]) ** 2 + (yy - y[k]) ** 2) / (2 * s * s))
    err = np.full(img.shape, 0.02)
    return img + rng.normal(0, 0.02, img.shape), err


@pytest.mark.parametrize("connectivity", [4, 8])
def test_selective_deblending_equals_full_deblending(connectivity: int) -> None:
    data, err = _blended_field()
    cfg = DetectionConfig(connectivity=connectivity)
    det = detect(data, err, np.zeros(data.shape, bool), config=cfg)
    full = SourceFinder(
        n_pixels=cfg.npixels,
        connectivity=connectivity,
        deblend=True,
        n_levels=cfg.nlevels,
        contrast=cfg.contrast,
        progress_bar=False,
    )(det.convolved, cfg.nsigma * det.noise)
    undeblended = SourceFinder(
        n_pixels=cfg.npixels, connectivity=connectivity, deblend=False, progress_bar=False
    )(det.convolved, cfg.nsigma * det.noise)
    # the test means something only if deblending split segments and some were skipped
    n_cand = multi_peak_labels(det.convolved, undeblended.data, connectivity, 2 * cfg.npixels).size
    assert full.n_labels > undeblended.n_labels
    assert 0 < n_cand < undeblended.n_labels
    assert np.array_equal(det.segmentation.data, full.data)


def test_multi_peak_labels_counts_peaks_within_each_segment() -> None:
    values = np.zeros((5, 9))
    values[2, 1], values[2, 3] = 5.0, 4.0  # segment 1: two peaks
    values[2, 6] = 3.0  # segment 2: one peak
    labels = np.zeros((5, 9), int)
    labels[1:4, 0:5] = 1
    labels[1:4, 5:8] = 2
    assert multi_peak_labels(values, labels).tolist() == [1]
    # a neighbour in another segment does not suppress a maximum
    values[2, 5] = 10.0
    assert multi_peak_labels(values, labels).tolist() == [1]
    with pytest.raises(ValueError, match="connectivity"):
        multi_peak_labels(values, labels, connectivity=6)
