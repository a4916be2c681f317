"""Cone-search latency on an index of >= 100,000 synthetic products, vs a brute-force scan.

The synthetic products are WFI-detector-sized footprints (7.5' squares at random roll) with
random pointings in a 20 x 20 degree field, random detectors, optical elements and times; their
HEALPix cells come from the same ``platform_lib.data.footprint.polygon_cells`` the indexer uses.
Baseline (named, measured in the same run): the brute-force scan that applies the same exact
footprint test to every product (``ProductIndex.query(prefilter=False)``). Both must return the
same rows; the figure is the latency ratio scan / indexed.

    .venv/bin/python benchmarks/data/bench_search.py [--products 100000] [--queries 200]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, if not installed

import argparse
import statistics
import time

import numpy as np


def synthetic_index(n: int, seed: int = 1):
    from tqdm import tqdm

    from platform_lib.data.footprint import ORDER, polygon_cells, to_s_region
    from platform_lib.data.index import COLUMNS, rows_to_table

    rng = np.random.default_rng(seed)
    ra0, dec0 = 150.0, 2.0
    ra = ra0 + rng.uniform(-10, 10, n)
    dec = dec0 + rng.uniform(-10, 10, n)
    roll = rng.uniform(0, 2 * np.pi, n)
    half = 0.0625  # deg: 7.5 arcmin detector
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    rows = []
    oes = np.array(["F062", "F087", "F106", "F129", "F158", "F184", "F213", "F146"])
    for i in tqdm(range(n), desc="synthetic footprints", mininterval=2):
        c, s = np.cos(roll[i]), np.sin(roll[i])
        xy = corners @ np.array([[c, s], [-s, c]])
        verts = np.stack([ra[i] + xy[:, 0] / np.cos(np.radians(dec[i])), dec[i] + xy[:, 1]], axis=1)
        rows.append(
            {
                "path": f"synthetic/L2/p{i:07d}_cal.asdf",
                "size": 1,
                "version": "1",
                "level": "L2",
                "product_type": "wfi_image",
                "program": 1,
                "visit": i // 18,
                "exposure": 1,
                "detector": f"WFI{rng.integers(1, 19):02d}",
                "optical_element": str(oes[i % 8]),
                "start_mjd": 61000 + rng.uniform(0, 1000),
                "exposure_time": 139.8,
                "ra_center": ra[i],
                "dec_center": dec[i],
                "s_region": to_s_region(verts),
                "cells": polygon_cells(verts, ORDER).tolist(),
                "shape": [4088, 4088],
            }
        )
    table = rows_to_table(rows)
    assert table.column_names == COLUMNS
    return table, (ra0, dec0)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--products", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--scan-queries", type=int, default=5, help="brute-force queries (slow)")
    args = p.parse_args()

    from platform_lib.data.search import ProductIndex

    t = time.perf_counter()
    table, (ra0, dec0) = synthetic_index(args.products)
    t_build = time.perf_counter() - t
    t = time.perf_counter()
    idx = ProductIndex(table)
    t_load = time.perf_counter() - t
    rng = np.random.default_rng(7)
    cones = [
        (ra0 + rng.uniform(-9, 9), dec0 + rng.uniform(-9, 9), rng.uniform(0.01, 0.2))
        for _ in range(args.queries)
    ]
    idx.query(cone=cones[0])  # warm-up (mocpy import)
    lat, hits = [], []
    for c in cones:
        t = time.perf_counter()
        rows = idx.query(cone=c)
        lat.append(time.perf_counter() - t)
        hits.append(len(rows))
    scan = []
    for c in cones[: args.scan_queries]:
        t = time.perf_counter()
        full = idx.query(cone=c, prefilter=False)
        scan.append(time.perf_counter() - t)
        assert np.array_equal(full, idx.query(cone=c)), "indexed search differs from the scan"
    med, med_scan = statistics.median(lat), statistics.median(scan)
    print(f"products indexed                : {args.products}")
    print(f"synthetic index build           : {t_build:.1f} s (footprint cells with mocpy)")
    print(f"index load (ProductIndex)       : {t_load:.2f} s")
    print(
        f"cone search, HEALPix prefilter  : median {med * 1e3:.2f} ms, p95 "
        f"{np.percentile(lat, 95) * 1e3:.2f} ms over {len(lat)} cones "
        f"(radius 0.6-12 arcmin; median {int(np.median(hits))} hits)"
    )
    print(
        f"baseline: brute-force scan      : median {med_scan * 1e3:.0f} ms over {len(scan)} cones"
    )
    print(f"RATIO scan / indexed            : {med_scan / med:.0f}x faster (same rows returned)")


if __name__ == "__main__":
    main()
