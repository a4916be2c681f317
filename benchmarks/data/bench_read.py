"""Read throughput of a full-size L2 product (4088 x 4088) from SeaweedFS vs the local disk.

One ``ImageModel`` with every array at full detector size (data float32, dq uint32, err,
var_poisson, ... float16; about 270 MB on disk) is written once to the local disk and staged into
SeaweedFS. Each trial opens it with ``platform_lib.data.open`` and reads every array (``.sum()``
forces the bytes). Baseline (named, same run): the same read from the local disk. Figures: MB/s
for both and the ratio S3 / local; also the cost of opening (metadata only) on each.

    .venv/bin/python benchmarks/data/bench_read.py [--trials 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, if not installed

import argparse
import statistics
import tempfile
import time

import numpy as np

ARRAYS = ("data", "dq", "err", "var_poisson", "var_rnoise", "chisq", "dumo")


def make_l2(path: Path, n: int) -> None:
    from roman_datamodels import datamodels as dm

    m = dm.ImageModel.create_fake_data(shape=(n, n))
    rng = np.random.default_rng(1)
    m.data = rng.normal(1, 0.1, (n, n)).astype(np.float32)
    m.dq = rng.integers(0, 4, (n, n), dtype=np.uint32)
    for name in ("err", "var_poisson", "chisq", "dumo"):
        if name in m:
            setattr(m, name, rng.random((n, n), dtype=np.float32).astype(np.float16))
    m.save(path)


def read_all(product, store) -> tuple[float, float, int]:
    from platform_lib.data.access import open_product

    t0 = time.perf_counter()
    with open_product(product, store) as m:
        t_open = time.perf_counter() - t0
        nbytes = 0
        for name in ARRAYS:
            if name in m:
                a = np.asarray(getattr(m, name))
                a.sum()
                nbytes += a.nbytes
    return t_open, time.perf_counter() - t0, nbytes


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--size", type=int, default=4088)
    args = p.parse_args()

    from hub_config.local.seaweedfs import SeaweedFS
    from platform_lib.data.store import get_store

    with tempfile.TemporaryDirectory(prefix="bench-read-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "local").mkdir()
        src = tmp / "local" / "full_cal.asdf"
        make_l2(src, args.size)
        mb = src.stat().st_size / 1e6
        local = get_store(tmp / "local")
        with SeaweedFS(tmp / "weed", buckets=("bench",)) as weed:
            opts = weed.storage_options()
            s3 = get_store(
                "s3://bench/x", endpoint=weed.endpoint_url, key=opts["key"], secret=opts["secret"]
            )
            s3.put_file(src, "full_cal.asdf")
            results: dict[str, list[tuple[float, float, int]]] = {
                "local disk": [],
                "SeaweedFS S3": [],
            }
            for _ in range(args.trials):  # alternate, so drift hits both alike
                results["local disk"].append(read_all("full_cal.asdf", local))
                results["SeaweedFS S3"].append(read_all("full_cal.asdf", s3))
        print(
            f"full L2 product: {args.size}^2, {mb:.0f} MB on disk, {len(ARRAYS)} arrays; "
            f"median of {args.trials} trials"
        )
        rate = {}
        for name, runs in results.items():
            t_open = statistics.median(r[0] for r in runs)
            t_all = statistics.median(r[1] for r in runs)
            rate[name] = runs[0][2] / 1e6 / t_all
            print(
                f"{name:13s}: open (metadata) {t_open * 1e3:6.0f} ms; read all arrays "
                f"{t_all:5.2f} s = {rate[name]:6.0f} MB/s (decoded)"
            )
        print(
            f"RATIO SeaweedFS / local disk throughput: {rate['SeaweedFS S3'] / rate['local disk']:.2f}"
        )


if __name__ == "__main__":
    main()
