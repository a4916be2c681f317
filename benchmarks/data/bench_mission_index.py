"""Mission-scale product index: cone-search p50/p95 and update throughput at 1e5 / 1e6 / 1e7.

Synthetic but survey-shaped metadata: pointings over a survey footprint, each with the 18 WFI
detectors (7.5' squares in a 6 x 3 layout), several optical elements and epochs; the footprint
grows with the product count so every size has the same coverage depth (40 products over a
point, 4 bands x 10 epochs) and a cone returns the same number of products at every size.

Paths measured in one run, on the same rows:
- **TAP/ObsCore, SQL**: the ``roman.products`` table of the platform's DaCHS service
  (PostgreSQL + pgSphere, GiST on ``s_region``), the query DaCHS generates for an ADQL
  ``INTERSECTS(s_region, CIRCLE(...))`` run on the database;
- **TAP/ObsCore, HTTP**: the same ADQL through DaCHS's TAP endpoint with pyvo (sync, VOTable);
- **embedded**: the Parquet index + ``ProductIndex`` (HEALPix cells + exact test), at the
  sizes given by ``--embedded`` (its cells are built per product with mocpy: ~0.2 ms each).
Update throughput: bulk load (COPY) rows/s, single-product publication (one transaction) per
second, and for the embedded index the time to rewrite the Parquet index with 1,000 new rows.

    nice -n 10 .venv/bin/python benchmarks/data/bench_mission_index.py \\
        [--sizes 100000 1000000 10000000] [--embedded 100000 1000000] [--queries 200]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, if not installed

import argparse
import shutil
import statistics
import tempfile
import time

import numpy as np

DET = 0.125  # deg: a 4088-pixel detector at 0.11"/pixel
#: detector centre offsets (deg) in the focal plane: 6 columns x 3 rows (a WFI-like layout)
LAYOUT = np.array(
    [[(c - 2.5) * 0.135, (r - 1) * 0.135 + 0.02 * abs(c - 2.5)] for r in range(3) for c in range(6)]
)
BANDS = np.array(["F062", "F087", "F106", "F129", "F158", "F184", "F213", "F146"])
DEPTH = 40


def footprint_side(n: int) -> float:
    """Side (deg) of the square survey field that gives the coverage depth DEPTH for n products."""
    return float(np.sqrt(n * DET * DET / DEPTH))


def synthetic_chunks(n: int, chunk: int = 250_000, seed: int = 1):
    """(ra_centre, dec_centre, corners[k,4,2], band, detector, mjd) in chunks of detectors."""
    rng = np.random.default_rng(seed)
    side = footprint_side(n)
    ra0, dec0 = 40.0, -30.0
    n_point = -(-n // 18)
    done = 0
    for start in range(0, n_point, chunk // 18):
        k = min(chunk // 18, n_point - start)
        pra = ra0 + rng.uniform(-side / 2, side / 2, k) / np.cos(np.radians(dec0))
        pdec = dec0 + rng.uniform(-side / 2, side / 2, k)
        roll = rng.uniform(0, 2 * np.pi, k)
        band = BANDS[rng.integers(0, 4, k)]
        mjd = 61000 + rng.uniform(0, 1800, k)
        c, s = np.cos(roll), np.sin(roll)
        # detector centres: pointing + rotated layout offsets (tangent-plane approximation)
        ox = c[:, None] * LAYOUT[None, :, 0] - s[:, None] * LAYOUT[None, :, 1]
        oy = s[:, None] * LAYOUT[None, :, 0] + c[:, None] * LAYOUT[None, :, 1]
        dec = pdec[:, None] + oy
        ra = pra[:, None] + ox / np.cos(np.radians(dec))
        sq = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * DET / 2
        cx = c[:, None, None] * sq[None, None, :, 0] - s[:, None, None] * sq[None, None, :, 1]
        cy = s[:, None, None] * sq[None, None, :, 0] + c[:, None, None] * sq[None, None, :, 1]
        cdec = dec[:, :, None] + cy
        cra = ra[:, :, None] + cx / np.cos(np.radians(cdec))
        corners = np.stack([cra, cdec], axis=-1).reshape(-1, 4, 2)
        m = min(len(corners), n - done)
        yield (
            ra.reshape(-1)[:m],
            dec.reshape(-1)[:m],
            corners[:m],
            np.repeat(band, 18)[:m],
            np.tile(np.arange(1, 19), k)[:m],
            np.repeat(mjd, 18)[:m],
            done,
        )
        done += m


def _copy_rows(conn, chunk) -> int:
    ra, dec, corners, band, det, mjd, offset = chunk
    cols = (
        "obs_publisher_did, obs_id, obs_collection, dataproduct_type, calib_level, access_url, "
        "access_format, s_ra, s_dec, s_fov, s_region, t_min, t_max, t_exptime, em_min, em_max, "
        "facility_name, instrument_name, roman_level, optical_element, detector, product_path, "
        "visibility"
    )
    from platform_lib.data.obscore import BANDPASS_UM

    with conn.cursor().copy(f"COPY roman.products ({cols}) FROM STDIN") as copy:
        for i in range(len(ra)):
            j = offset + i
            path = f"synthetic/L2/p{j:08d}_wfi{det[i]:02d}_{band[i].lower()}_cal.asdf"
            lo, hi = BANDPASS_UM[band[i]]
            poly = "{" + ",".join(f"({a % 360:.7f}d,{b:.7f}d)" for a, b in corners[i]) + "}"
            copy.write_row(
                (
                    f"ivo://roman.platform/products?{path}",
                    f"p{j:08d}",
                    "ROMAN",
                    "image",
                    2,
                    f"s3://roman/{path}",
                    "application/x-asdf",
                    float(ra[i]) % 360,
                    float(dec[i]),
                    0.177,
                    poly,
                    float(mjd[i]),
                    float(mjd[i]) + 139.8 / 86400,
                    139.8,
                    lo * 1e-6,
                    hi * 1e-6,
                    "Roman",
                    "WFI",
                    "L2",
                    band[i],
                    f"WFI{det[i]:02d}",
                    path,
                    "public",
                )
            )
    return len(ra)


def _cones(n: int, q: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    side = footprint_side(n) * 0.9
    ra = 40.0 + rng.uniform(-side / 2, side / 2, q) / np.cos(np.radians(-30.0))
    dec = -30.0 + rng.uniform(-side / 2, side / 2, q)
    return list(zip(ra, dec, rng.uniform(0.005, 0.05, q)))  # 18" to 3' cones


def _pct(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), float(np.percentile(values, 95))


#: the same survey shape as ``synthetic_chunks``, generated inside PostgreSQL (a Python COPY
#: of 1e7 rows would take longer than the queries being measured): pointings with a random roll,
#: each with the 18 detectors of LAYOUT, squares of side DET rotated with the pointing.
_GENERATE = """
INSERT INTO roman.products (obs_publisher_did, obs_id, obs_collection, dataproduct_type,
  calib_level, access_url, access_format, s_ra, s_dec, s_fov, s_region, t_min, t_max, t_exptime,
  em_min, em_max, facility_name, instrument_name, roman_level, optical_element, detector,
  product_path, visibility)
SELECT 'ivo://roman.platform/products?' || path, 'p' || pid || '_' || det, 'ROMAN', 'image', 2,
  's3://roman/' || path, 'application/x-asdf', ra, dec, 0.177,
  spoly(format('{(%%sd,%%sd),(%%sd,%%sd),(%%sd,%%sd),(%%sd,%%sd)}',
    ra + (-c + s) * h / cos(radians(dec)), dec + (-s - c) * h,
    ra + ( c + s) * h / cos(radians(dec)), dec + ( s - c) * h,
    ra + ( c - s) * h / cos(radians(dec)), dec + ( s + c) * h,
    ra + (-c - s) * h / cos(radians(dec)), dec + (-s + c) * h)),
  mjd, mjd + 139.8 / 86400, 139.8, 1.38e-6, 1.774e-6, 'Roman', 'WFI', 'L2', band,
  'WFI' || lpad(det::text, 2, '0'), path, 'public'
FROM (
  SELECT p.pid, l.det, %(h)s AS h, cos(p.roll) AS c, sin(p.roll) AS s, p.mjd, p.band,
    p.dec0 + sin(p.roll) * l.x + cos(p.roll) * l.y AS dec,
    p.ra0 + (cos(p.roll) * l.x - sin(p.roll) * l.y)
      / cos(radians(p.dec0 + sin(p.roll) * l.x + cos(p.roll) * l.y)) AS ra,
    'synthetic/L2/p' || p.pid || '_wfi' || l.det || '_cal.asdf' AS path
  FROM (SELECT g AS pid, 40 + (random() - 0.5) * %(side)s / cos(radians(-30)) AS ra0,
          -30 + (random() - 0.5) * %(side)s AS dec0, random() * 2 * pi() AS roll,
          61000 + random() * 1800 AS mjd,
          (ARRAY['F062', 'F087', 'F106', 'F129'])[1 + floor(random() * 4)::int] AS band
        FROM generate_series(%(first)s::bigint, %(last)s::bigint) g) p
  CROSS JOIN (VALUES {layout}) AS l(det, x, y)
) q
"""


def _generate(conn, n: int, first: int = 1, footprint: bool = True) -> int:
    layout = ", ".join(f"({i + 1}, {float(x)!r}, {float(y)!r})" for i, (x, y) in enumerate(LAYOUT))
    n_point = -(-n // 18)
    sql = _GENERATE.replace("{layout}", layout)
    if not footprint:  # building 1e7 pgSphere polygons from text takes ~25 min here
        a = sql.index("  spoly(format(")
        b = sql.index("  mjd, mjd + 139.8")
        sql = sql[:a] + "  NULL,\n" + sql[b:]
    step = 50_000
    for a in range(first, first + n_point, step):
        conn.execute(
            sql,
            {
                "h": DET / 2,
                "side": footprint_side(n),
                "first": a,
                "last": min(a + step - 1, first + n_point - 1),
            },
        )
    return n_point * 18


def bench_tap(
    tap, n: int, queries: int, http_queries: int, gist: bool, footprint: bool = True
) -> dict:
    """Load n rows, index them, time cones as the TAP query role (under row-level security)."""
    import pyvo

    out: dict = {"n": n}
    with tap.connect() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS q3c")
        # as for pgSphere in the service (hub_config/tap/schema.py): under row-level security
        # only LEAKPROOF conditions reach the index
        conn.execute(
            "DO $$ DECLARE f regprocedure; BEGIN FOR f IN SELECT oid::regprocedure "
            "FROM pg_proc WHERE proname LIKE 'q3c%' LOOP "
            "EXECUTE format('ALTER FUNCTION %s LEAKPROOF', f); END LOOP; END $$"
        )
        conn.execute("DROP INDEX IF EXISTS roman.products_s_region")
        conn.execute("DROP INDEX IF EXISTS roman.products_q3c")
        conn.execute("TRUNCATE roman.products")
        # update throughput: a bulk COPY from Python (what publish_index does), 20,000 rows
        t = time.perf_counter()
        copied = sum(_copy_rows(conn, c) for c in synthetic_chunks(20_000, seed=5))
        out["copy_rows_s"] = copied / (time.perf_counter() - t)
        conn.execute("TRUNCATE roman.products")
        t = time.perf_counter()
        out["n"] = _generate(conn, n, footprint=footprint)
        out["generate_s"] = time.perf_counter() - t
        t = time.perf_counter()
        conn.execute("CREATE INDEX products_q3c ON roman.products (q3c_ang2ipix(s_ra, s_dec))")
        out["q3c_s"] = time.perf_counter() - t
        if gist:
            t = time.perf_counter()
            conn.execute("CREATE INDEX products_s_region ON roman.products USING GIST (s_region)")
            out["gist_s"] = time.perf_counter() - t
        conn.execute("VACUUM ANALYZE roman.products")
        cones = _cones(n, queries)
        # as DaCHS's query role, under the row-level-security policy, like every TAP query
        conn.execute("SET ROLE untrusted")
        conn.execute("SELECT set_config('roman.viewer', 'alice', false)")
        # q3c: products whose centre is within r + half a detector diagonal, then the exact
        # footprint overlap; gist: the footprint overlap on the GiST index (what ADQL
        # INTERSECTS becomes in DaCHS)
        exact = (
            (" AND s_region && scircle(spoint(radians(%(ra)s), radians(%(dec)s)), radians(%(r)s))")
            if footprint
            else ""
        )
        queries_sql = {
            "q3c": (
                "SELECT obs_publisher_did, access_url, t_min FROM roman.products "
                "WHERE q3c_radial_query(s_ra, s_dec, %(ra)s, %(dec)s, %(rm)s)" + exact
            )
        }
        if gist:
            queries_sql["gist"] = (
                "SELECT obs_publisher_did, access_url, t_min FROM roman.products"
                " WHERE s_region && scircle(spoint(radians(%(ra)s), "
                "radians(%(dec)s)), radians(%(r)s))"
            )
        for name, sql in queries_sql.items():
            args = [{"ra": ra, "dec": dec, "r": r, "rm": r + DET * 0.75} for ra, dec, r in cones]
            conn.execute(sql, args[0]).fetchall()
            lat, hits = [], []
            for a in args:
                t = time.perf_counter()
                hits.append(len(conn.execute(sql, a).fetchall()))
                lat.append((time.perf_counter() - t) * 1000)
            out[name] = _pct(lat)
            out[f"{name}_hits"] = statistics.median(hits)
        conn.execute("RESET ROLE")
    # single-product publication: one transaction each, through the service's own call
    from platform_lib.data.obscore import OBSCORE_COLUMNS

    t = time.perf_counter()
    n_upd = 0
    for ra, dec, corners, _band, _det, _mjd, _ in synthetic_chunks(100, seed=99):
        for k in range(len(ra)):
            row = dict.fromkeys(OBSCORE_COLUMNS)
            row.update(
                obs_publisher_did=f"ivo://roman.platform/products?upd/{n}/{k}",
                obs_id=f"u{k}",
                calib_level=4,
                access_url="s3://roman/upd",
                roman_level="L5",
                visibility="public",
                s_ra=float(ra[k]) % 360,
                s_dec=float(dec[k]),
                s_region="{" + ",".join(f"({a % 360:.7f}d,{b:.7f}d)" for a, b in corners[k]) + "}",
            )
            tap.add_product(row)
            n_upd += 1
    out["publish_s"] = n_upd / (time.perf_counter() - t)
    http = []
    if gist and http_queries:
        svc = pyvo.dal.TAPService(tap.url)
        for ra, dec, r in cones[:http_queries]:
            q = (
                f"SELECT obs_publisher_did, access_url, t_min FROM ivoa.obscore WHERE "
                f"1 = INTERSECTS(s_region, CIRCLE('ICRS', {ra}, {dec}, {r}))"
            )
            t = time.perf_counter()
            svc.search(q, maxrec=100000)
            http.append((time.perf_counter() - t) * 1000)
    out["http"] = _pct(http) if http else (float("nan"), float("nan"))
    return out


def bench_embedded(n: int, queries: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    from platform_lib.data.footprint import ORDER, polygon_cells, to_s_region
    from platform_lib.data.index import rows_to_table
    from platform_lib.data.search import ProductIndex

    rows = []
    t = time.perf_counter()
    for ra, dec, corners, band, det, mjd, off in synthetic_chunks(n):
        for i in tqdm(range(len(ra)), desc=f"embedded cells {off}", mininterval=5):
            rows.append(
                {
                    "path": f"synthetic/L2/p{off + i:08d}_cal.asdf",
                    "size": 1,
                    "version": "1",
                    "level": "L2",
                    "product_type": "wfi_image",
                    "detector": f"WFI{det[i]:02d}",
                    "optical_element": str(band[i]),
                    "start_mjd": float(mjd[i]),
                    "exposure_time": 139.8,
                    "ra_center": float(ra[i]),
                    "dec_center": float(dec[i]),
                    "s_region": to_s_region(corners[i]),
                    "cells": polygon_cells(corners[i], ORDER).tolist(),
                    "shape": [4088, 4088],
                }
            )
    t_cells = time.perf_counter() - t
    table = rows_to_table(rows)
    del rows
    t = time.perf_counter()
    idx = ProductIndex(table)
    t_load = time.perf_counter() - t
    cones = _cones(n, queries)
    idx.query(cone=cones[0])
    lat, hits = [], []
    for c in cones:
        t = time.perf_counter()
        hits.append(len(idx.query(cone=c)))
        lat.append((time.perf_counter() - t) * 1000)
    # an update: 1,000 new rows appended, the index rewritten (what build_index does)
    tmp = Path(tempfile.mkdtemp(prefix="bench-embedded-"))
    try:
        new = table.slice(0, 1000)
        t = time.perf_counter()
        merged = pa.concat_tables([table, new]).sort_by("path")
        pq.write_table(merged, tmp / "products.parquet", compression="zstd")
        t_update = time.perf_counter() - t
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "n": n,
        "cells_s": t_cells,
        "load_s": t_load,
        "cone": _pct(lat),
        "hits": statistics.median(hits),
        "update_1000_s": t_update,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    p.add_argument("--embedded", type=int, nargs="*", default=[100_000])
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--http-queries", type=int, default=30)
    p.add_argument(
        "--gist-max",
        type=int,
        default=1_000_000,
        help="largest size that also gets the GiST footprint index (slow to build)",
    )
    p.add_argument(
        "--footprint-max",
        type=int,
        default=1_000_000,
        help="larger sizes are generated without footprints (centre index only)",
    )
    args = p.parse_args()

    from hub_config.tap.service import TapService

    base = Path(tempfile.mkdtemp(prefix="bench-tap-"))
    base.chmod(0o755)
    try:
        with TapService(base / "tap") as tap:
            for n in args.sizes:
                fp = n <= args.footprint_max
                r = bench_tap(
                    tap,
                    n,
                    args.queries,
                    args.http_queries,
                    gist=fp and n <= args.gist_max,
                    footprint=fp,
                )
                label = "q3c+footprint" if fp else "q3c centre (r + 0.75 detector, no exact test)"
                line = (
                    f"TAP n={r['n']:>10,}  {label} p50 {r['q3c'][0]:.1f} ms p95 "
                    f"{r['q3c'][1]:.1f} ms ({r['q3c_hits']:.0f} hits)"
                )
                if "gist" in r:
                    line += (
                        f"  GiST p50 {r['gist'][0]:.1f} ms p95 {r['gist'][1]:.1f} ms"
                        f"  TAP/HTTP (pyvo) p50 {r['http'][0]:.0f} ms p95 {r['http'][1]:.0f} ms"
                        f"  GiST build {r['gist_s']:.0f} s"
                    )
                line += (
                    f"  generate {r['generate_s']:.0f} s  q3c build {r['q3c_s']:.0f} s  "
                    f"COPY {r['copy_rows_s']:,.0f} rows/s  publish {r['publish_s']:.0f}/s"
                )
                print(line, flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for n in args.embedded:
        r = bench_embedded(n, args.queries)
        print(
            f"embedded n={n:>9,}  cone p50 {r['cone'][0]:.1f} ms p95 {r['cone'][1]:.1f} ms "
            f"(median {r['hits']:.0f} hits)  load {r['load_s']:.1f} s  cells {r['cells_s']:.0f} s"
            f"  update (+1000 rows, rewrite) {r['update_1000_s']:.1f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
