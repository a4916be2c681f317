"""The light-curve store decision, second round: the platform's own store vs a HATS collection.

Issue 17: "Replace the own light-curve store with HATS unless a benchmark in the same run shows
the own layout is better for the same queries." This script makes that comparison in one run,
on the same rows, with the same queries, one thread each (the layouts compared, not the
parallelism: LSDB computes with Dask's synchronous scheduler; its default threaded scheduler is
reported beside it for the aggregate).

Data: a Galactic Bulge Time Domain Survey-like field (one WFI pointing, 0.8 x 0.4 deg at
(l, b) = (1, -1.5) deg), ``--sources`` stars with a bulge-like F146 luminosity function
(N(<m) ~ 10^(0.3 m), 17 < m < 25), each measured at ``--epochs`` consecutive 15-minute epochs
by forced photometry (the rows ``variability.forced_photometry`` writes: one table per image).
1% of the stars are periodic variables (0.1-10 d, 0.05-0.5 mag), 0.05% microlensing events
peaking inside the window. The same batches are written
- to the own ``LightCurveStore`` (nested HEALPix order-6 partitions, one file per image and
  partition, appended image by image), and
- as a HATS collection: each image's rows staged as a Parquet file, then
  ``platform_lib.data.hats.publish_catalog`` (hats-import + 10" margin cache on a local Dask
  cluster of 2 workers). (By id alone the store now uses a HATS index catalog on ``source_id``
  and LSDB's ``id_search``: measured against the scan in ``bench_lightcurve_index.py``.)

Queries, interleaved (own, HATS, own, HATS ...) so drift in the shared machine's load hits both:
one star's light curve by position (0.5" cone, then its id: the static catalog gives a star's
position), all light curves in a 60" cone, and the full-field aggregate (the per-source
variability indices of ``variability.variability_indices`` over every source: the own store's
``update_indices``, LSDB's ``map_partitions`` with the same function). The answers are checked
to be the same rows and the same indices. Baseline: the own store; ratios are own / HATS (> 1:
HATS is faster or smaller).

    nice -n 5 .venv/bin/python benchmarks/catalogs/bench_lightcurve_hats.py \\
        [--sources 100000] [--epochs 100] [--repeats 20] [--json out.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, if not installed

import argparse
import json
import os
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

RA0, DEC0 = 268.4616, -28.8488  # (l, b) = (1, -1.5) deg
HALF_RA, HALF_DEC = 0.4, 0.2  # deg: a WFI pointing's ~0.8 x 0.4 deg (0.28 deg^2 active)
CADENCE_D = 15.0 / 1440.0
T0_MJD = 61100.0


def simulate(n_src: int, n_epochs: int, seed: int = 17) -> tuple[dict[str, np.ndarray], Iterator]:
    """The field's sources (truth) and a generator of (image_id, forced-photometry Table)."""
    from astropy.table import Table

    rng = np.random.default_rng(seed)
    ra = RA0 + rng.uniform(-HALF_RA, HALF_RA, n_src) / np.cos(np.radians(DEC0))
    dec = DEC0 + rng.uniform(-HALF_DEC, HALF_DEC, n_src)
    # N(<m) ~ 10^(0.3 m) on [17, 25]: inverse CDF
    lo, hi = 10 ** (0.3 * 17), 10 ** (0.3 * 25)
    mag = np.log10(lo + rng.random(n_src) * (hi - lo)) / 0.3
    flux = 10 ** ((23.9 - mag) / 2.5)  # uJy
    sigma = 0.05 + np.sqrt(flux / 3000.0) + 0.003 * flux  # sky + shot + 0.3% floor, uJy
    kind = rng.random(n_src)
    periodic = kind < 0.01
    lensed = (kind >= 0.01) & (kind < 0.0105)
    period = 10 ** rng.uniform(-1, 1, n_src)
    amp = rng.uniform(0.05, 0.5, n_src)
    phase = rng.uniform(0, 2 * np.pi, n_src)
    t_peak = T0_MJD + rng.uniform(0, n_epochs * CADENCE_D, n_src)
    t_e = rng.uniform(0.2, 3.0, n_src)
    u0 = rng.uniform(0.05, 1.0, n_src)
    sid = np.arange(1, n_src + 1, dtype=np.int64) + 10**9  # survey-style ids, not row numbers
    truth = {"source_id": sid, "ra": ra, "dec": dec, "mag": mag, "variable": periodic | lensed}

    def batches() -> Iterator[tuple[str, Table]]:
        noise = np.random.default_rng(seed + 1)
        for k in range(n_epochs):
            mjd = T0_MJD + k * CADENCE_D
            f = flux.copy()
            f[periodic] *= 10 ** (
                -0.4 * amp[periodic] * np.sin(2 * np.pi * mjd / period[periodic] + phase[periodic])
            )
            uu = np.hypot(u0[lensed], (mjd - t_peak[lensed]) / t_e[lensed])
            f[lensed] *= (uu**2 + 2) / (uu * np.sqrt(uu**2 + 4))  # Paczynski magnification
            image_id = f"gbtds01_f146_e{k:05d}"
            yield (
                image_id,
                Table(
                    {
                        "source_id": sid,
                        "ra": ra,
                        "dec": dec,
                        "image_id": np.full(n_src, image_id),
                        "band": np.full(n_src, "F146"),
                        "flux_unit": np.full(n_src, "uJy"),
                        "mjd": np.full(n_src, mjd),
                        "flux": f + noise.normal(0, 1, n_src) * sigma,
                        "flux_err": sigma,
                    }
                ),
            )

    return truth, batches()


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_own(batches: Iterator, root: Path) -> tuple[Any, dict[str, float]]:
    from own_store import OwnLightCurveStore

    store = OwnLightCurveStore(str(root))
    t0 = time.perf_counter()
    rows = sum(store.append_lightcurves(t, batch_id=b) for b, t in batches)
    return store, {"write": time.perf_counter() - t0, "rows": rows}


def write_hats(
    batches: Iterator, root: Path, client: Any, pixel_threshold: int
) -> tuple[Path, dict[str, float]]:
    """Stage each image's rows as Parquet, import them as a collection (with its margin)."""
    from platform_lib.data.hats import publish_catalog

    stage = root / "staged"
    stage.mkdir(parents=True)
    t0 = time.perf_counter()
    files = []
    for image_id, t in batches:
        files.append(stage / f"{image_id}.parquet")
        t.write(files[-1], format="parquet")
    t_stage = time.perf_counter() - t0
    t0 = time.perf_counter()
    coll = publish_catalog(
        files, root / "hats", "lightcurves", client=client, pixel_threshold=pixel_threshold
    )
    t_import = time.perf_counter() - t0
    staged_bytes = disk_bytes(stage)
    for f in files:
        f.unlink()
    return coll, {"stage": t_stage, "import": t_import, "staged_bytes": staged_bytes}


def _pct(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def hats_cone(cat: Any, ra: float, dec: float, radius_arcsec: float) -> Any:
    return cat.cone_search(ra, dec, radius_arcsec).compute(progress_bar=False)


def _indices_of(df: Any) -> Any:
    """variability_indices of one LSDB partition (a pandas frame), as a pandas frame."""
    from astropy.table import Table

    from platform_lib.catalogs.variability import INDEX_COLUMNS, variability_indices

    cols = ["source_id", "ra", "dec", "band", "flux_unit", "mjd", "flux", "flux_err"]
    if len(df) == 0:
        import pandas as pd

        return pd.DataFrame({c: pd.Series(dtype=_META_DTYPES[c]) for c in INDEX_COLUMNS})
    t = Table({c: np.asarray(df[c]) for c in cols})
    return variability_indices(t).to_pandas()


_META_DTYPES = {
    "source_id": "int64",
    "band": "str",
    "flux_unit": "str",
    "ra": "float64",
    "dec": "float64",
    "n_epochs": "int64",
    "mean_flux": "float64",
    "chi2_red": "float64",
    "stetson_j": "float64",
    "iqr_norm": "float64",
}


def hats_aggregate(cat: Any) -> Any:
    import pandas as pd

    meta = pd.DataFrame({c: pd.Series(dtype=t) for c, t in _META_DTYPES.items()})
    out = cat.map_partitions(_indices_of, meta=meta)
    res = out.compute(progress_bar=False)
    return pd.DataFrame(res)


def _same_indices(own: Any, hats: Any) -> bool:
    a = own.to_pandas().sort_values("source_id").reset_index(drop=True)
    b = hats.sort_values("source_id").reset_index(drop=True)
    if len(a) != len(b) or not np.array_equal(a["source_id"], b["source_id"]):
        return False
    return all(
        np.allclose(a[c], b[c], rtol=1e-9, equal_nan=True)
        for c in ("n_epochs", "mean_flux", "chi2_red", "stetson_j", "iqr_norm")
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sources", type=int, default=100_000)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=20, help="single-star lookups per store")
    ap.add_argument("--cones", type=int, default=10, help='60" cones per store')
    ap.add_argument("--aggregates", type=int, default=3, help="full-field aggregates per store")
    ap.add_argument("--pixel-threshold", type=int, default=1_000_000, help="HATS rows/partition")
    ap.add_argument("--workers", type=int, default=2, help="Dask workers for hats-import")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if args.sources < 100 or args.epochs < 3 or min(args.repeats, args.cones, args.aggregates) < 1:
        ap.error("need --sources >= 100, --epochs >= 3 and at least one repeat of each query")

    import dask

    from platform_lib.compute import get_client
    from platform_lib.data.hats import open_catalog

    n_rows = args.sources * args.epochs
    print(f"{args.sources:,} sources x {args.epochs} epochs = {n_rows:,} rows", flush=True)
    res: dict[str, Any] = {"sources": args.sources, "epochs": args.epochs, "rows": n_rows}
    with tempfile.TemporaryDirectory(prefix="roman-bench-lchats-") as tmp_s:
        tmp = Path(tmp_s)
        truth, batches = simulate(args.sources, args.epochs)
        store, own_w = write_own(batches, tmp / "own")
        print(f"own store written in {own_w['write']:.1f} s", flush=True)
        _, batches = simulate(args.sources, args.epochs)
        with get_client(n_workers=args.workers, reuse=False) as client:
            coll, hats_w = write_hats(batches, tmp / "hats", client, args.pixel_threshold)
        print(
            f"HATS written: staged {hats_w['stage']:.1f} s, import+margin {hats_w['import']:.1f} s",
            flush=True,
        )
        t_open, cat = timed(lambda: open_catalog(coll))
        res["hats_partitions"] = len(cat.get_healpix_pixels())
        own_files = sum(1 for _ in (tmp / "own").rglob("*.parquet"))
        res["bytes"] = {
            "own": disk_bytes(tmp / "own"),
            "hats_catalog": disk_bytes(coll / "lightcurves"),
            "hats_margin": disk_bytes(coll / "lightcurves_10arcs"),
            "staged_inputs": hats_w["staged_bytes"],
        }
        res["write"] = {
            "own": own_w["write"],
            "hats_stage": hats_w["stage"],
            "hats_import": hats_w["import"],
            "hats_open": t_open,
        }

        rng = np.random.default_rng(5)
        picks = rng.choice(args.sources, args.repeats, replace=False)
        cones = list(
            zip(
                RA0 + rng.uniform(-0.8, 0.8, args.cones) * HALF_RA / np.cos(np.radians(DEC0)),
                DEC0 + rng.uniform(-0.8, 0.8, args.cones) * HALF_DEC,
            )
        )
        lat: dict[str, list[float]] = {
            k: [] for k in ("own_star", "hats_star", "own_cone", "hats_cone")
        }
        with dask.config.set(scheduler="synchronous"):
            # one untimed query each first: imports, caches and the catalog's first graph
            store.lightcurves(float(truth["ra"][0]), float(truth["dec"][0]), 0.5)
            hats_cone(cat, float(truth["ra"][0]), float(truth["dec"][0]), 0.5)
            for i in picks:
                sid, ra, dec = truth["source_id"][i], truth["ra"][i], truth["dec"][i]
                t, a = timed(store.lightcurves, ra, dec, 0.5)
                a = a[np.asarray(a["source_id"]) == sid]
                lat["own_star"].append(t)
                t, b = timed(hats_cone, cat, ra, dec, 0.5)
                b = b[b["source_id"] == sid]
                lat["hats_star"].append(t)
                if not len(a) == len(b) == args.epochs:
                    raise SystemExit(f"star {sid}: own {len(a)} rows, HATS {len(b)}")
                if not np.allclose(np.sort(np.asarray(a["flux"])), np.sort(b["flux"].to_numpy())):
                    raise SystemExit(f"star {sid}: the two stores return different fluxes")
            cone_rows = []
            for ra, dec in cones:
                t, a = timed(store.lightcurves, ra, dec, 60.0)
                lat["own_cone"].append(t)
                t, b = timed(hats_cone, cat, ra, dec, 60.0)
                lat["hats_cone"].append(t)
                if len(a) != len(b):
                    raise SystemExit(f"cone ({ra}, {dec}): own {len(a)} rows, HATS {len(b)}")
                cone_rows.append(len(a))
            res["cone_rows_median"] = int(np.median(cone_rows))
            agg_own, agg_hats = [], []
            for _ in range(args.aggregates):
                t, own_idx = timed(store.update_indices)
                agg_own.append(t)
                t, hats_idx = timed(lambda: hats_aggregate(cat))
                agg_hats.append(t)
        with dask.config.set(scheduler="threads"):
            agg_threads = [timed(lambda: hats_aggregate(cat))[0] for _ in range(args.aggregates)]
        if not _same_indices(own_idx, hats_idx):
            raise SystemExit("the full-field aggregate differs between the stores")
        loud = int((np.asarray(own_idx["chi2_red"]) > 10).sum())
        res["aggregate"] = {
            "sources": len(own_idx),
            "chi2_gt_10": loud,
            "true_variables": int(truth["variable"].sum()),
        }
        res["latency"] = {k: _pct(v) for k, v in lat.items()}
        res["latency"]["own_aggregate"] = _pct(agg_own)
        res["latency"]["hats_aggregate"] = _pct(agg_hats)
        res["latency"]["hats_aggregate_threads"] = _pct(agg_threads)
        res["own_files"] = own_files
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["load_average"] = os.getloadavg()
    report(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


def report(res: dict[str, Any]) -> None:
    w, b, lat = res["write"], res["bytes"], res["latency"]
    hats_write = w["hats_stage"] + w["hats_import"]
    hats_bytes = b["hats_catalog"] + b["hats_margin"]
    mb = 2**20
    print(f"\n{'operation':<52}{'own store':>14}{'HATS':>14}{'own/HATS':>10}")

    def row(label: str, own: float, hats: float, fmt: str = "{:.3f}") -> None:
        print(f"{label:<52}{fmt.format(own):>14}{fmt.format(hats):>14}{own / hats:>10.2f}")

    row(f"write {res['rows']:,} rows (s; HATS: stage + import)", w["own"], hats_write, "{:.1f}")
    for key, label in (
        ("star", 'one star by position (0.5"), p50 s'),
        ("cone", 'cone 60", all light curves, p50 s'),
        ("aggregate", "full-field variability indices, p50 s"),
    ):
        own, hats = lat[f"own_{key}"], lat[f"hats_{key}"]
        row(label, own[0], hats[0])
        row(label.replace("p50", "p95"), own[1], hats[1])
    row("on disk, MB (HATS: catalog + margin)", b["own"] / mb, hats_bytes / mb, "{:.1f}")
    print(
        f"\nHATS detail: stage {w['hats_stage']:.1f} s + import with margin {w['hats_import']:.1f} s; "
        f"margin {b['hats_margin'] / mb:.1f} MB; {res['hats_partitions']} partitions; open "
        f"{w['hats_open']:.2f} s"
    )
    agg_t = lat["hats_aggregate_threads"]
    print(
        f"HATS aggregate with Dask's threaded scheduler: p50 {agg_t[0]:.3f} s, p95 {agg_t[1]:.3f} s"
    )
    print(
        f"own store: {res['own_files']} files; rows per cone (median) {res['cone_rows_median']:,}; "
        f"aggregate: {res['aggregate']['sources']:,} sources, {res['aggregate']['chi2_gt_10']} "
        f"with chi2_red > 10 ({res['aggregate']['true_variables']} true variables); identical "
        f"answers in both stores"
    )
    la = res["load_average"]
    print(
        f"peak RSS {res['peak_rss_mb']:.0f} MB; load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}\n"
        "baseline: the own LightCurveStore (ratio = own / HATS; > 1 means HATS is faster or smaller)"
    )


if __name__ == "__main__":
    sys.exit(main())
