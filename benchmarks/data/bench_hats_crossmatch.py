"""LSDB cross-match of two synthetic survey-size HATS catalogs on a local Dask cluster.

Issue 17 asks for "a LSDB cross-match of two synthetic 10^7-10^8-row HATS catalogs on a local
Dask cluster with the rows/s it reaches". Two catalogs of ``--rows`` rows each (10^7 by
default; 10^8 with ``--rows 100000000``: 24 min and 11 GB of disk on 2 cores, 4.7x the 10^7
run) over a Roman High Latitude Wide Area Survey-like patch:

- footprint: a square patch centred at (RA, Dec) = (55, -36) deg (a Rubin/Roman overlap region)
  of ``rows / --density`` deg^2 (43 sources per arcmin^2 by default: 64 deg^2 for 10^7 rows,
  640 for 10^8), with bright-star masks cut out (holes of 1-6' radius, ~1.5 per deg^2);
- sky distribution: galaxies, 60% unclustered (uniform on the sphere) and 40% in groups
  (Gaussian clumps of 10-60" with 5-50 members), F158 magnitudes with counts rising as
  10^(0.3 m) to 26.5;
- catalog A ("roman"): id, ra, dec, mag, mag_err; catalog B ("ground"): id, ra, dec, mag,
  true_id, true_sep. A fraction ``--true-fraction`` (default 0.5) of B's rows are counterparts
  of A rows, displaced by a 2-D Gaussian whose per-axis sigma grows with magnitude (0.01" at
  the bright end, 0.05" at m = 24.5, capped at 0.15" from m = 25.9): mostly far below 0.3",
  with a faint tail beyond it. The rest of B are sources of its own sky.

Generated in chunks of ``--chunk`` rows (one Parquet file per chunk and catalog), so the
generator's memory stays bounded whatever ``--rows``; imported with
``platform_lib.data.hats.publish_catalog`` (hats-import + a 2" margin cache) on a LocalCluster of
``--workers`` workers (2); then ``crossmatch(radius_arcsec=0.3, n_neighbors=1)`` on the same
cluster, reduced per partition (match count, true matches), so no result table is collected.

Reported: generation, import and cross-match wall times, cross-match rows/s (rows of A + B per
second of wall time), completeness (true counterparts found / true counterparts; and / those
within 0.3"), spurious matches, peak RSS of this process and of each worker. Baseline, same run,
same rows: scipy's cKDTree on 3-D unit vectors (one process, one core) and astropy's
``search_around_sky`` over a sub-region of the same files holding ``--baseline-rows`` rows of
each catalog, scaled per row to the full size.

    nice -n 5 .venv/bin/python benchmarks/data/bench_hats_crossmatch.py \\
        [--rows 10000000] [--workers 2] [--baseline-rows 1000000] [--json out.json]

Size: about 440 lines, one script on purpose: the sky model, the chunked generator, the
LSDB run, the baselines and the report are read together to check the figures are fair.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, if not installed

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

RA0, DEC0 = 55.0, -36.0
RADIUS_ARCSEC = 0.3
MAG_MIN, MAG_MAX = 18.0, 26.5
DENSITY = 156_250.0  # per deg^2 (43 per arcmin^2, a weak-lensing-depth galaxy sample): 10^7 in 64


def _unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    r, d = np.radians(ra), np.radians(dec)
    return np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)])


class Sky:
    """The patch: its bounds (uniform on the sphere), its star masks, and a sampler of galaxies."""

    def __init__(self, area_deg2: float, seed: int):
        side = np.sqrt(area_deg2)
        self.dec_lo, self.dec_hi = DEC0 - side / 2, DEC0 + side / 2
        self.z_lo, self.z_hi = np.sin(np.radians(self.dec_lo)), np.sin(np.radians(self.dec_hi))
        # RA span so the patch's true area is area_deg2
        self.ra_half = np.degrees(np.radians(side) ** 2 / (self.z_hi - self.z_lo)) / 2
        rng = np.random.default_rng(seed)
        n_holes = max(1, int(1.5 * area_deg2))
        hra, hdec = self._uniform(rng, n_holes)
        self.holes = _unit(hra, hdec)
        self.hole_cos = np.cos(np.radians(rng.uniform(1, 6, n_holes) / 60))

    def _uniform(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        ra = RA0 + rng.uniform(-self.ra_half, self.ra_half, n)
        dec = np.degrees(np.arcsin(rng.uniform(self.z_lo, self.z_hi, n)))
        return ra, dec

    def _inside(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        ok = (np.abs(ra - RA0) <= self.ra_half) & (dec >= self.dec_lo) & (dec <= self.dec_hi)
        v = _unit(ra, dec)
        for h, c in zip(self.holes, self.hole_cos):
            ok &= v @ h < c
        return ok

    def galaxies(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n positions: 60% uniform, 40% in Gaussian groups, none in a star mask."""
        ra_out, dec_out = [], []
        have = 0
        while have < n:
            m = int((n - have) * 1.1) + 100
            n_grp_members = int(0.4 * m)
            ra_u, dec_u = self._uniform(rng, m - n_grp_members)
            sizes = rng.integers(5, 51, n_grp_members // 20 + 1)
            sizes = sizes[np.cumsum(sizes) <= n_grp_members]
            cra, cdec = self._uniform(rng, len(sizes))
            width = np.repeat(rng.uniform(10, 60, len(sizes)) / 3600, sizes)
            gdec = np.repeat(cdec, sizes) + rng.normal(0, 1, sizes.sum()) * width
            gra = np.repeat(cra, sizes) + rng.normal(0, 1, sizes.sum()) * width / np.cos(
                np.radians(gdec)
            )
            ra, dec = np.concatenate([ra_u, gra]), np.concatenate([dec_u, gdec])
            keep = self._inside(ra, dec)
            ra, dec = ra[keep], dec[keep]
            p = rng.permutation(len(ra))[: n - have]
            ra_out.append(ra[p])
            dec_out.append(dec[p])
            have += len(p)
        return np.concatenate(ra_out), np.concatenate(dec_out)


def magnitudes(rng: np.random.Generator, n: int) -> np.ndarray:
    lo, hi = 10 ** (0.3 * MAG_MIN), 10 ** (0.3 * MAG_MAX)
    return np.log10(lo + rng.random(n) * (hi - lo)) / 0.3


def astrometric_sigma(mag: np.ndarray) -> np.ndarray:
    """Per-axis sigma (arcsec) of the A-B offset of a counterpart."""
    return np.minimum(0.01 + 0.04 * 10 ** (0.4 * (mag - 24.5)), 0.15)


def generate(
    out: Path, n: int, chunk: int, true_fraction: float, area: float, seed: int = 11
) -> Iterator[tuple[Path, Path, int]]:
    """Write chunk files roman/part-K.parquet and ground/part-K.parquet; yield each pair."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sky = Sky(area, seed)
    (out / "roman").mkdir(parents=True)
    (out / "ground").mkdir(parents=True)
    for k, start in enumerate(range(0, n, chunk)):
        m = min(chunk, n - start)
        rng = np.random.default_rng([seed, k])
        ra, dec = sky.galaxies(rng, m)
        mag = magnitudes(rng, m)
        ids = np.arange(start, start + m, dtype=np.int64)
        a = pa.table(
            {
                "id": ids,
                "ra": ra,
                "dec": dec,
                "mag": mag.astype(np.float32),
                "mag_err": (0.01 + 0.1 * 10 ** (0.4 * (mag - 26))).astype(np.float32),
            }
        )
        # B: counterparts of a random subset of this chunk's A rows, then its own sources
        n_true = int(round(true_fraction * m))
        pick = rng.choice(m, n_true, replace=False)
        sig = astrometric_sigma(mag[pick]) / 3600
        dx, dy = rng.normal(0, 1, n_true) * sig, rng.normal(0, 1, n_true) * sig
        tdec = dec[pick] + dy
        tra = ra[pick] + dx / np.cos(np.radians(tdec))
        ora, odec = sky.galaxies(rng, m - n_true)
        bra, bdec = np.concatenate([tra, ora]), np.concatenate([tdec, odec])
        true_id = np.concatenate([ids[pick], np.full(m - n_true, -1, np.int64)])
        sep = np.concatenate([np.hypot(dx, dy) * 3600, np.full(m - n_true, np.nan)])
        bmag = np.concatenate(
            [mag[pick] + rng.normal(0.3, 0.1, n_true), magnitudes(rng, m - n_true)]
        )
        order = rng.permutation(m)  # B's rows in no particular order
        b = pa.table(
            {
                "id": np.arange(start, start + m, dtype=np.int64) + 10**10,
                "ra": bra[order],
                "dec": bdec[order],
                "mag": bmag[order].astype(np.float32),
                "true_id": true_id[order],
                "true_sep": sep[order].astype(np.float32),
            }
        )
        fa, fb = out / "roman" / f"part-{k:04d}.parquet", out / "ground" / f"part-{k:04d}.parquet"
        pq.write_table(a, fa)
        pq.write_table(b, fb)
        yield fa, fb, m


def _rss() -> float:
    """This process's peak resident set so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _count_matches(df: Any) -> Any:
    import pandas as pd

    found = df["id_roman"].to_numpy() == df["true_id_ground"].to_numpy()
    return pd.DataFrame({"matches": [len(df)], "true": [int(found.sum())]})


def lsdb_crossmatch(a_path: Path, b_path: Path) -> tuple[float, int, int]:
    """Wall time, matches, true matches of LSDB's 0.3" nearest-neighbour cross-match."""
    import pandas as pd

    from platform_lib.data.hats import open_catalog

    t0 = time.perf_counter()
    a = open_catalog(a_path, columns=["id", "ra", "dec"])
    b = open_catalog(b_path, columns=["id", "ra", "dec", "true_id"])
    xm = a.crossmatch(
        b,
        radius_arcsec=RADIUS_ARCSEC,
        n_neighbors=1,
        suffixes=("_roman", "_ground"),
        suffix_method="all_columns",
    )
    meta = pd.DataFrame({"matches": pd.Series(dtype="int64"), "true": pd.Series(dtype="int64")})
    counts = xm.to_dask_dataframe().map_partitions(_count_matches, meta=meta).compute()
    return time.perf_counter() - t0, int(counts["matches"].sum()), int(counts["true"].sum())


def region(files: list[Path], ra_half: float, dec_half: float) -> Any:
    """The rows of ``files`` within a box around the patch centre (a pyarrow Table)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    parts = []
    for f in files:
        t = pq.read_table(f)
        keep = pc.and_(
            pc.less_equal(pc.abs(pc.subtract(t["ra"], RA0)), ra_half),
            pc.less_equal(pc.abs(pc.subtract(t["dec"], DEC0)), dec_half),
        )
        parts.append(t.filter(keep))
    return pa.concat_tables(parts)


def baselines(
    a_files: list[Path], b_files: list[Path], sky: Sky, n_rows: int, target: int
) -> dict[str, Any]:
    """cKDTree and search_around_sky on a box of ~target rows per catalog."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord, search_around_sky
    from scipy.spatial import cKDTree

    frac = min(1.0, target / n_rows)
    area_frac = np.sqrt(frac)
    a = region(a_files, sky.ra_half * area_frac, (sky.dec_hi - sky.dec_lo) / 2 * area_frac)
    b = region(b_files, sky.ra_half * area_frac, (sky.dec_hi - sky.dec_lo) / 2 * area_frac)
    a_ra, a_dec, a_id = (a[c].to_numpy() for c in ("ra", "dec", "id"))
    b_ra, b_dec, b_true = (b[c].to_numpy() for c in ("ra", "dec", "true_id"))
    n_sub = len(a_ra) + len(b_ra)
    chord = 2 * np.sin(np.radians(RADIUS_ARCSEC / 3600) / 2)

    t0 = time.perf_counter()
    tree = cKDTree(_unit(b_ra, b_dec))
    dist, j = tree.query(_unit(a_ra, a_dec), k=1, distance_upper_bound=chord)
    t_kd = time.perf_counter() - t0
    hit = np.isfinite(dist)
    kd_matches = int(hit.sum())
    kd_true = int((b_true[j[hit]] == a_id[hit]).sum())

    t0 = time.perf_counter()
    ca, cb = SkyCoord(a_ra, a_dec, unit="deg"), SkyCoord(b_ra, b_dec, unit="deg")
    ia, ib, sep, _ = search_around_sky(ca, cb, RADIUS_ARCSEC * u.arcsec)
    # nearest B per A, as the cross-match keeps
    o = np.lexsort((sep.arcsec, ia))
    first = np.r_[True, ia[o][1:] != ia[o][:-1]]
    ia_n, ib_n = ia[o][first], ib[o][first]
    t_sas = time.perf_counter() - t0
    sas_true = int((b_true[ib_n] == a_id[ia_n]).sum())
    in_region_true = int(np.isin(b_true[b_true >= 0], a_id).sum())
    scale = 2 * n_rows / n_sub
    return {
        "rows_a": len(a_ra),
        "rows_b": len(b_ra),
        "true_pairs": in_region_true,
        "kdtree": {
            "seconds": t_kd,
            "rows_per_s": n_sub / t_kd,
            "scaled_seconds": t_kd * scale,
            "matches": kd_matches,
            "true": kd_true,
        },
        "search_around_sky": {
            "seconds": t_sas,
            "rows_per_s": n_sub / t_sas,
            "scaled_seconds": t_sas * scale,
            "matches": len(ia_n),
            "true": sas_true,
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows of each catalog")
    ap.add_argument("--chunk", type=int, default=1_000_000, help="rows per generated file")
    ap.add_argument(
        "--density",
        type=float,
        default=DENSITY,
        help="sources per deg^2 of each catalog; the patch area is rows / density",
    )
    ap.add_argument("--true-fraction", type=float, default=0.5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pixel-threshold", type=int, default=1_000_000, help="HATS rows/partition")
    ap.add_argument("--baseline-rows", type=int, default=1_000_000)
    ap.add_argument("--workdir", type=Path, help="where the files go (default: a temporary folder)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if args.rows < 1000 or args.chunk < 1000 or not 0 < args.true_fraction <= 1:
        ap.error("need --rows >= 1000, --chunk >= 1000 and 0 < --true-fraction <= 1")
    area = args.rows / args.density if args.density > 0 else 0.0
    if not 0.01 <= area <= 2000:
        ap.error(f"--rows / --density is a {area:g} deg^2 patch: keep it within 0.01-2000 deg^2")

    from platform_lib.compute import get_client
    from platform_lib.data.hats import publish_catalog

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="roman-bench-xm-", dir=args.workdir))
    res: dict[str, Any] = {"rows": args.rows, "area_deg2": area, "workers": args.workers}
    try:
        print(f"generating 2 x {args.rows:,} rows over {area:g} deg^2 ...", flush=True)
        t0 = time.perf_counter()
        a_files, b_files = [], []
        for fa, fb, _ in generate(work / "in", args.rows, args.chunk, args.true_fraction, area):
            a_files.append(fa)
            b_files.append(fb)
        res["generate_s"] = time.perf_counter() - t0
        res["rss_mb"] = {"generate": _rss()}
        res["input_mb"] = sum(f.stat().st_size for f in a_files + b_files) / 2**20
        print(f"  {res['generate_s']:.1f} s, {res['input_mb']:.0f} MB of Parquet", flush=True)

        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        n_true = n_within = 0
        for f in b_files:
            s = pq.read_table(f, columns=["true_sep"])["true_sep"]
            n_true += len(s) - s.null_count - int(pc.sum(pc.is_nan(s)).as_py())
            n_within += int(pc.sum(pc.less_equal(s, RADIUS_ARCSEC)).as_py() or 0)
        res["true_counterparts"], res["true_within_radius"] = n_true, n_within

        with get_client(n_workers=args.workers, reuse=False) as client:
            hats = work / "hats"
            for name, files in (("roman", a_files), ("ground", b_files)):
                print(f"hats-import {name} ...", flush=True)
                t0 = time.perf_counter()
                publish_catalog(
                    files,
                    hats,
                    name,
                    client=client,
                    margin_arcsec=2.0,
                    pixel_threshold=args.pixel_threshold,
                )
                res[f"import_{name}_s"] = time.perf_counter() - t0
                res["rss_mb"][f"import_{name}"] = _rss()
                print(f"  {res[f'import_{name}_s']:.1f} s", flush=True)
            res["hats_mb"] = sum(f.stat().st_size for f in hats.rglob("*") if f.is_file()) / 2**20
            print("LSDB cross-match ...", flush=True)
            t, n_match, n_good = lsdb_crossmatch(hats / "roman", hats / "ground")
            res["crossmatch"] = {
                "seconds": t,
                "rows_per_s": 2 * args.rows / t,
                "matches": n_match,
                "true": n_good,
            }
            res["rss_mb"]["crossmatch"] = _rss()
            rss = client.run(_rss)
            res["worker_peak_rss_mb"] = sorted(rss.values())
            from platform_lib.data.hats import open_catalog

            res["partitions"] = {
                n: len(open_catalog(hats / n).get_healpix_pixels()) for n in ("roman", "ground")
            }
        print("baselines (one process) ...", flush=True)
        res["baseline"] = baselines(a_files, b_files, Sky(area, 11), args.rows, args.baseline_rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["rss_mb"]["baseline"] = res["peak_rss_mb"] = _rss()
    res["load_average"] = os.getloadavg()
    report(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


def report(res: dict[str, Any]) -> None:
    xm, bl = res["crossmatch"], res["baseline"]
    n = res["rows"]
    print(
        f"\n2 x {n:,} rows over {res['area_deg2']:g} deg^2, {res['workers']} Dask workers; "
        f"partitions {res['partitions']['roman']} + {res['partitions']['ground']}"
    )
    print(f"generate {res['generate_s']:.1f} s ({res['input_mb']:.0f} MB Parquet)")
    print(
        f'hats-import + 2" margin: roman {res["import_roman_s"]:.1f} s, ground '
        f"{res['import_ground_s']:.1f} s ({2 * n / (res['import_roman_s'] + res['import_ground_s']):,.0f} "
        f"rows/s; {res['hats_mb']:.0f} MB)"
    )
    comp = xm["true"] / res["true_counterparts"]
    comp_r = xm["true"] / res["true_within_radius"]
    print(
        f'LSDB crossmatch 0.3" (nearest): {xm["seconds"]:.1f} s, {xm["rows_per_s"]:,.0f} rows/s '
        f"(A + B); {xm['matches']:,} matches, {xm['true']:,} true of {res['true_counterparts']:,} "
        f"counterparts (completeness {comp:.4f}; {comp_r:.4f} of the "
        f'{res["true_within_radius"]:,} within 0.3"); spurious {xm["matches"] - xm["true"]:,}'
    )
    print(
        f"\nbaseline on a sub-region: {bl['rows_a']:,} + {bl['rows_b']:,} rows, "
        f"{bl['true_pairs']:,} true pairs"
    )
    print(f"{'method':<36}{'s':>9}{'rows/s':>13}{'scaled to full, s':>19}{'LSDB speed-up':>15}")
    for key, label in (
        ("kdtree", "scipy cKDTree, 1 core"),
        ("search_around_sky", "astropy search_around_sky"),
    ):
        b = bl[key]
        print(
            f"{label:<36}{b['seconds']:>9.2f}{b['rows_per_s']:>13,.0f}{b['scaled_seconds']:>19.1f}"
            f"{b['scaled_seconds'] / xm['seconds']:>15.2f}"
        )
        print(f"{'':<36}completeness {b['true'] / bl['true_pairs']:.4f}, matches {b['matches']:,}")
    print(
        f"{'LSDB on ' + str(res['workers']) + ' workers (full size)':<36}{xm['seconds']:>9.2f}"
        f"{xm['rows_per_s']:>13,.0f}{xm['seconds']:>19.1f}{1.0:>15.2f}"
    )
    la = res["load_average"]
    print(
        f"\npeak RSS: this process {res['peak_rss_mb']:.0f} MB (after each step: "
        f"{', '.join(f'{k} {v:.0f}' for k, v in res['rss_mb'].items())}), "
        f"workers {', '.join(f'{r:.0f}' for r in res['worker_peak_rss_mb'])} MB; "
        f"load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}\n"
        "baseline: scipy cKDTree in one process (speed-up = baseline scaled / LSDB wall time)"
    )


if __name__ == "__main__":
    sys.exit(main())
