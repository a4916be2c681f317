"""Difference imaging of full 4088x4088 detector pairs: time and memory per image pair.

Three epochs of the cached detector scene (benchmarks/catalogs/detector.py) on one grid, each
with fresh noise; the last one holds 20 new point sources. Timed: ``difference_catalog`` with a
template of one image (one pair) and of two images, plus the three stages of one pair
(template + background, PSF matching and subtraction, source finding). The baseline is the
time to read the pair's pixels and subtract their photutils backgrounds (Background2D, the
floor of any subtraction pipeline), measured in the same run; recovery of the 20 injected
sources and the number of other detections are printed as a check.

    .venv/bin/python benchmarks/catalogs/bench_diffim.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))
import detector  # noqa: E402
from bench_static import CACHE, _peak_mb, _rss_mb  # noqa: E402


def main() -> int:
    from platform_lib.catalogs import CatalogImage
    from platform_lib.catalogs.detection import estimate_background
    from platform_lib.catalogs.diffim import difference_catalog, find_sources, subtract

    sim = detector.simulate(CACHE)
    rng = np.random.default_rng(5)
    n_new = 20
    xs = rng.integers(200, detector.SIZE - 200, n_new)
    ys = rng.integers(200, detector.SIZE - 200, n_new)
    flux = 10 ** ((23.9 - 23.0) / 2.5)  # AB 23: S/N ~ 40 in the difference
    epochs = [(sim["data"], sim["err"])]
    epochs.append(detector.noisy_epoch(sim, 11))
    # Inject the new sources into the last epoch's noiseless scene, then add its noise.
    clean = sim["clean"].astype(float)
    h = sim["psf"].shape[0] // 2
    for x, y in zip(xs, ys):
        clean[y - h : y + h + 1, x - h : x + h + 1] += flux * sim["psf"]
    last = detector.noisy_epoch({**sim, "clean": clean}, 12)
    epochs.append(last)
    w = detector.wcs()
    images = [
        CatalogImage(d, e, w, "F158", psf=sim["psf"], mjd=60000.0 + k, name=f"e{k}")
        for k, (d, e) in enumerate(epochs)
    ]
    base_rss = _rss_mb()

    t0 = time.perf_counter()
    for img in (images[0], images[2]):
        estimate_background(img.data, img.mask)
    t_base = time.perf_counter() - t0

    t0 = time.perf_counter()
    cat_pair = difference_catalog([images[0], images[2]])
    t_pair = time.perf_counter() - t0

    t0 = time.perf_counter()
    diff = subtract([images[0], images[2]])
    t_sub = time.perf_counter() - t0
    t0 = time.perf_counter()
    find_sources(diff)
    t_find = time.perf_counter() - t0
    del diff

    t0 = time.perf_counter()
    cat3 = difference_catalog(images)
    t_three = time.perf_counter() - t0
    peak = _peak_mb() - base_rss

    def check(cat) -> tuple[int, int]:
        cx, cy = np.asarray(cat["x"]), np.asarray(cat["y"])
        hit = np.zeros(len(cat), bool)
        found = 0
        for x, y in zip(xs, ys):
            m = np.hypot(cx - x, cy - y) < 1.5
            found += bool(m.any())
            hit |= m
        return found, int((~hit).sum())

    f2, o2 = check(cat_pair)
    f3, o3 = check(cat3)
    print(f"{'case':<44}{'wall s':>8}{'x base':>8}")
    rows = [
        ("baseline: read + Background2D of the pair", t_base),
        ("difference_catalog, 1 template image (pair)", t_pair),
        ("  of which subtract (template, match, diff)", t_sub),
        ("  of which find_sources", t_find),
        ("difference_catalog, 2 template images", t_three),
    ]
    for name, t in rows:
        print(f"{name:<44}{t:>8.1f}{t / t_base:>8.2f}")
    print(f"peak extra memory over the 3 loaded epochs: {peak:.0f} MB")
    print(
        f"injected AB 23 point sources recovered: pair {f2}/{n_new} (other detections {o2}); "
        f"3 epochs {f3}/{n_new} (other detections {o3})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
