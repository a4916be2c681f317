"""A light curve by ``source_id`` alone: the HATS index catalog (``id_search``) vs the scan.

Why: ``LightCurveStore.lightcurve(source_id)`` without a position used to read every partition
of the ``lightcurves`` collection and filter (``query``); each published version now holds a
HATS index catalog on ``source_id`` and the read goes through LSDB's ``id_search``, which reads
the index and then only the partition holding the id. This script measures both in one run, on
the same published store, same ids, interleaved (index, scan, index, scan ...) so drift in the
shared machine's load hits both, one thread each (Dask's synchronous scheduler). The answers are
checked to be the same rows. Baseline: the scan; the ratio is scan / index (> 1: the index is
faster). Publishing time (with the index) is reported too.

Data: ``--sources`` stars spread uniformly over the sky (a wide survey's footprint, so the
collection has several partitions: LSDB's writer makes ~1 GiB partitions, here one per
order-0 cell), each with ``--epochs`` measurements in the rows ``forced_photometry`` writes.

    nice -n 10 .venv/bin/python benchmarks/catalogs/bench_lightcurve_index.py \\
        [--sources 10000] [--epochs 50] [--repeats 30] [--json out.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, if not installed

import argparse
import json
import os
import tempfile
import time
from typing import Any

import numpy as np


def rows(n_src: int, n_epochs: int, seed: int = 23) -> Any:
    """Forced-photometry rows of ``n_src`` stars over the whole sky, ``n_epochs`` each."""
    from astropy.table import Table

    rng = np.random.default_rng(seed)
    ra = rng.uniform(0.0, 360.0, n_src)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n_src)))
    n = n_src * n_epochs
    sid = np.arange(1, n_src + 1, dtype=np.int64) + 10**9  # survey-style ids
    return Table(
        {
            "source_id": np.repeat(sid, n_epochs),
            "ra": np.repeat(ra, n_epochs),
            "dec": np.repeat(dec, n_epochs),
            "image_id": np.tile(np.array([f"img{k:05d}" for k in range(n_epochs)]), n_src),
            "band": np.full(n, "F146"),
            "flux_unit": np.full(n, "uJy"),
            "mjd": np.tile(61100.0 + np.arange(n_epochs) / 96.0, n_src),
            "flux": rng.lognormal(2.0, 1.0, n),
            "flux_err": rng.uniform(0.05, 0.2, n),
        }
    )


def _pct(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sources", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=30, help="lookups per path")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if args.sources < 1 or args.epochs < 1 or args.repeats < 1:
        ap.error("--sources, --epochs and --repeats must be >= 1")

    import dask

    from platform_lib.catalogs.variability import LightCurveStore, _as_table

    table = rows(args.sources, args.epochs)
    ids = np.random.default_rng(5).choice(np.unique(table["source_id"]), args.repeats)
    with tempfile.TemporaryDirectory(prefix="bench-lc-index-") as tmp:
        store = LightCurveStore(os.path.join(tmp, "lc"))
        store.append_lightcurves(table, "batch")
        t0 = time.perf_counter()
        store.publish()
        publish_s = time.perf_counter() - t0
        cat = store.catalog("lightcurves")
        assert store.has_id_index(cat), "the published collection has no source_id index"
        partitions = len(cat.get_healpix_pixels())

        def scan(sid: int) -> Any:  # lightcurve()'s path for a store without an index
            t = _as_table(
                store.catalog("lightcurves")
                .query(f"source_id == {sid}")
                .compute(progress_bar=False)
            )
            t.sort("mjd")
            return t

        with_index: list[float] = []
        without: list[float] = []
        with dask.config.set(scheduler="synchronous"):
            store.lightcurve(int(ids[0]))  # warm: imports, first file opens
            scan(int(ids[0]))
            for sid in ids:
                t0 = time.perf_counter()
                a = store.lightcurve(int(sid))
                with_index.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                b = scan(int(sid))
                without.append(time.perf_counter() - t0)
                if len(a) != args.epochs or any(
                    not np.array_equal(np.asarray(a[c]), np.asarray(b[c])) for c in a.colnames
                ):
                    raise SystemExit(f"source {sid}: index and scan disagree")
    i50, i95 = _pct(with_index)
    s50, s95 = _pct(without)
    res = {
        "sources": args.sources,
        "epochs": args.epochs,
        "rows": args.sources * args.epochs,
        "partitions": partitions,
        "repeats": args.repeats,
        "publish_s": publish_s,
        "index_p50_s": i50,
        "index_p95_s": i95,
        "scan_p50_s": s50,
        "scan_p95_s": s95,
        "ratio_p50": s50 / i50,
        "ratio_p95": s95 / i95,
        "load_average": os.getloadavg(),
    }
    print(
        f"{res['rows']:,} rows ({args.sources:,} sources x {args.epochs} epochs), "
        f"{partitions} partitions, published (with index) in {publish_s:.1f} s"
    )
    print(f"by id, index (id_search): p50 {i50 * 1e3:.1f} ms  p95 {i95 * 1e3:.1f} ms")
    print(f"by id, scan (query):      p50 {s50 * 1e3:.1f} ms  p95 {s95 * 1e3:.1f} ms")
    print(f"scan / index: p50 {res['ratio_p50']:.1f}x  p95 {res['ratio_p95']:.1f}x")
    print(f"load average {res['load_average']}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
