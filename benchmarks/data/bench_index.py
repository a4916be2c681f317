"""Index build rate (files/s), local folder and SeaweedFS, vs reading the whole files.

Stages N products (copies of a few simulated L2 cutouts of ``--size`` pixels, under distinct
names) into a local folder and into SeaweedFS, then builds the index (ASDF metadata only). The
named baseline, measured in the same run on the same files, is a full read: opening each
product with roman_datamodels and touching every array, which is what an indexer that does not
keep arrays lazy would pay. Figures: files/s for both, and the ratio index / full read.

    .venv/bin/python benchmarks/data/bench_index.py [--files 200] [--size 1024] [--workers 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, if not installed

import argparse
import tempfile
import time


def make_products(folder: Path, n_distinct: int, size: int) -> list[Path]:
    from astropy.time import Time

    from platform_lib.sample import make_exposure

    out = []
    for i in range(n_distinct):
        _, l2 = make_exposure(
            f"WFI{i % 18 + 1:02d}", "F158", 270.0, 66.0, Time("2027-03-01"), size=size, seed=i
        )
        path = folder / f"src{i}_cal.asdf"
        l2.save(path)
        out.append(path)
    return out


def full_read(store, paths) -> float:
    import numpy as np

    from platform_lib.data.access import open_product

    t = time.perf_counter()
    for rel in paths:
        with open_product(rel, store) as m:
            for name in ("data", "dq", "err", "var_poisson"):
                np.asarray(getattr(m, name)).sum()
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--files", type=int, default=200)
    p.add_argument("--size", type=int, default=1024, help="cutout size of the products (pixels)")
    p.add_argument("--workers", type=int, default=2, help="Dask workers for the index")
    p.add_argument("--baseline-files", type=int, default=40, help="files read fully (baseline)")
    args = p.parse_args()

    from hub_config.local.seaweedfs import SeaweedFS
    from platform_lib.compute import get_client
    from platform_lib.data.index import build_index
    from platform_lib.data.store import get_store

    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "src").mkdir()
        sources = make_products(tmp / "src", 4, args.size)
        size_mb = sources[0].stat().st_size / 1e6
        with (
            SeaweedFS(tmp / "weed", buckets=("bench",)) as weed,
            get_client(n_workers=args.workers) as client,
        ):
            opts = weed.storage_options()
            stores = {
                "local folder": get_store(tmp / "local"),
                "SeaweedFS S3": get_store(
                    "s3://bench/x",
                    endpoint=weed.endpoint_url,
                    key=opts["key"],
                    secret=opts["secret"],
                ),
            }
            (tmp / "local").mkdir()
            print(
                f"{args.files} products of {size_mb:.1f} MB ({args.size}^2 L2 cutouts), "
                f"{args.workers} Dask workers"
            )
            # warm-up: the workers import roman_datamodels, gwcs and mocpy once (as on a
            # running cluster); not timed
            warm = get_store(tmp / "warm")
            (tmp / "warm").mkdir()
            for i in range(2 * args.workers):
                warm.put_file(sources[i % len(sources)], f"L2/w{i}_cal.asdf")
            build_index(warm, client=client, batch_size=1, progress=False)
            for name, store in stores.items():
                rels = []
                for i in range(args.files):
                    rel = f"L2/p{i:05d}_cal.asdf"
                    store.put_file(sources[i % len(sources)], rel)
                    rels.append(rel)
                report = build_index(store, client=client, batch_size=16, progress=False)
                assert report.read == args.files and not report.errors
                again = build_index(store, client=client, progress=False)
                base = full_read(store, rels[: args.baseline_files])
                index_rate = report.read / report.seconds
                full_rate = args.baseline_files / base
                print(
                    f"{name:13s}: index {index_rate:7.1f} files/s ({report.seconds:.1f} s, "
                    f"incl. listing and writing the Parquet); re-index with nothing new "
                    f"{again.seconds:.2f} s"
                )
                print(
                    f"{'':13s}  baseline full read {full_rate:7.1f} files/s (one process); "
                    f"RATIO index/full-read {index_rate / full_rate:.1f}x"
                )


if __name__ == "__main__":
    main()
