"""The variability store decision: HEALPix-partitioned Parquet vs PostgreSQL, measured.

One million forced-photometry rows (N sources x epochs over a ~7 deg^2 survey patch, 1% of the
sources variable) are written batch by batch (one batch = one image, as the Dask tasks write
them) into
- the platform's ``LightCurveStore`` (Parquet, nested HEALPix order 6 partitions, a local folder;
  on S3 the same files), and
- PostgreSQL 15 (Debian's server, started here as tests/conftest.py starts it): one table with
  a HEALPix order-12 column, b-tree indexes on it and on source_id, rows loaded with COPY.
Then the per-source variability indices are computed (Parquet: ``update_indices``; PostgreSQL:
one GROUP BY into a table, reduced chi-square only), and two queries are timed: a cone (all light
curves within 60" of a position, median of 5 positions) and an index query (sources with
reduced chi-square > 10). PostgreSQL is the named baseline: the ratios are Parquet / PostgreSQL.

    .venv/bin/python benchmarks/catalogs/bench_lightcurve_store.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

PG_ORDER = 12  # 0.86' cells: a 60" cone touches a handful


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """Debian's PostgreSQL server in a private folder on a free loopback port (as the tests do)."""

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            raise SystemExit("PostgreSQL server binaries not found: run scripts/system-deps.sh")
        self.bindir = found[-1].parent
        self.base = Path(tempfile.mkdtemp(prefix="roman-bench-pg-"))
        self.base.chmod(0o755)
        self.port = _free_port()
        self.as_root = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        cmd = ["runuser", "-u", "postgres", "--", *args] if self.as_root else list(args)
        subprocess.run(
            cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120
        )

    def __enter__(self) -> str:
        if self.as_root:
            shutil.chown(self.base, "postgres")
        data = self.base / "data"
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        )
        opts = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.base} "
            "-c shared_buffers=256MB"
        )  # fsync stays on: a fair durability comparison with files
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(self.base / "pg.log"),
            "-w",
            "start",
        )
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def __exit__(self, *exc) -> None:
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.base / "data"), "-m", "fast", "-w", "stop"
        )
        shutil.rmtree(self.base, ignore_errors=True)

    def size_mb(self) -> float:
        return sum(f.stat().st_size for f in (self.base / "data").rglob("*") if f.is_file()) / 2**20


#: (ra, dec, variable) of the sources the last simulate() made, once it has run to the end
TRUTH: dict[str, Any] = {}


def simulate(n_rows: int, n_epochs: int, seed: int = 3):
    """Per-epoch tables of forced photometry: constant sources and 1% sinusoidal variables."""
    from astropy.table import Table

    rng = np.random.default_rng(seed)
    n_src = n_rows // n_epochs
    ra = rng.uniform(268.5, 271.5, n_src)  # ~1.2 deg wide at dec 66
    dec = rng.uniform(64.5, 67.5, n_src)
    flux = 10 ** ((23.9 - rng.uniform(19, 25, n_src)) / 2.5)
    sigma = 0.0035 * 10 + np.sqrt(flux / 4200)  # aperture sky noise + shot noise, uJy
    variable = rng.random(n_src) < 0.01
    phase = rng.uniform(0, 2 * np.pi, n_src)
    for k in range(n_epochs):
        mjd = 60000.0 + 3.0 * k
        f = flux * np.where(
            variable, 10 ** (-0.4 * 0.3 * np.sin(2 * np.pi * mjd / 7.0 + phase)), 1.0
        )
        t = Table(
            {
                "source_id": np.arange(n_src),
                "ra": ra,
                "dec": dec,
                "image_id": np.full(n_src, f"img{k:04d}"),
                "band": np.full(n_src, "F158"),
                "mjd": np.full(n_src, mjd),
                "flux": f + rng.normal(0, 1, n_src) * sigma,
                "flux_err": sigma,
            }
        )
        yield f"img{k:04d}", t
    TRUTH["sources"] = (ra, dec, variable)


def bench_parquet(batches, root: Path, cones) -> dict:
    from own_store import OwnLightCurveStore

    store = OwnLightCurveStore(str(root))
    t0 = time.perf_counter()
    rows = sum(store.append_lightcurves(t, batch_id=b) for b, t in batches)
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.update_indices()
    t_idx = time.perf_counter() - t0
    cone_t, cone_n = [], []
    for ra, dec in cones:
        t0 = time.perf_counter()
        cone_n.append(len(store.lightcurves(ra, dec, 60.0)))
        cone_t.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    loud = store.indices(min_chi2=10.0)
    t_q = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20
    return {
        "rows": rows,
        "write": t_write,
        "indices": t_idx,
        "cone": float(np.median(cone_t)),
        "cone_rows": int(np.median(cone_n)),
        "index_query": t_q,
        "n_loud": len(loud),
        "size_mb": size,
    }


def bench_postgres(batches, dsn: str, cones) -> dict:
    import astropy.units as u
    import psycopg
    from astropy.coordinates import Latitude, Longitude
    from astropy_healpix import HEALPix

    hp = HEALPix(nside=2**PG_ORDER, order="nested")
    rows = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("""CREATE TABLE lightcurves (source_id bigint, ra float8, dec float8, hpx bigint,
                        image_id text, band text, mjd float8, flux float8, flux_err float8)""")
        conn.execute("CREATE INDEX lc_hpx ON lightcurves (hpx)")
        conn.execute("CREATE INDEX lc_src ON lightcurves (source_id)")
        t0 = time.perf_counter()
        for _, t in batches:
            pix = hp.lonlat_to_healpix(
                Longitude(np.asarray(t["ra"]) * u.deg), Latitude(np.asarray(t["dec"]) * u.deg)
            )
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(
                    "COPY lightcurves (source_id, ra, dec, hpx, image_id, band, mjd, flux, flux_err) FROM STDIN"
                ) as cp:
                    for r, p in zip(
                        t.iterrows(
                            "source_id", "ra", "dec", "image_id", "band", "mjd", "flux", "flux_err"
                        ),
                        pix,
                    ):
                        cp.write_row((r[0], r[1], r[2], int(p), *r[3:]))
            rows += len(t)
        t_write = time.perf_counter() - t0
        t0 = time.perf_counter()
        conn.execute("""CREATE TABLE indices AS
            WITH m AS (SELECT source_id, band, sum(flux / flux_err^2) / sum(1 / flux_err^2) AS wmean
                       FROM lightcurves GROUP BY source_id, band)
            SELECT l.source_id, l.band, avg(l.ra) AS ra, avg(l.dec) AS dec, count(*) AS n_epochs,
                   min(m.wmean) AS mean_flux,
                   sum(((l.flux - m.wmean) / l.flux_err)^2) / greatest(count(*) - 1, 1) AS chi2_red
            FROM lightcurves l JOIN m USING (source_id, band) GROUP BY l.source_id, l.band""")
        conn.execute("CREATE INDEX idx_chi2 ON indices (chi2_red)")
        t_idx = time.perf_counter() - t0
        conn.execute("ANALYZE")
        cone_t, cone_n = [], []
        for ra, dec in cones:
            t0 = time.perf_counter()
            cells = hp.cone_search_lonlat(
                Longitude(ra * u.deg), Latitude(dec * u.deg), 60 * u.arcsec
            )
            cur = conn.execute(
                """SELECT * FROM lightcurves WHERE hpx = ANY(%s) AND
                   degrees(acos(least(1, sin(radians(dec)) * sin(radians(%s)) +
                   cos(radians(dec)) * cos(radians(%s)) * cos(radians(ra - %s))))) * 3600 <= 60""",
                ([int(c) for c in cells], dec, dec, ra),
            )
            cone_n.append(len(cur.fetchall()))
            cone_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        n_loud = len(conn.execute("SELECT * FROM indices WHERE chi2_red > 10").fetchall())
        t_q = time.perf_counter() - t0
    return {
        "rows": rows,
        "write": t_write,
        "indices": t_idx,
        "cone": float(np.median(cone_t)),
        "cone_rows": int(np.median(cone_n)),
        "index_query": t_q,
        "n_loud": n_loud,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=50)
    args = ap.parse_args()
    rng = np.random.default_rng(9)
    cones = list(zip(rng.uniform(269.0, 271.0, 5), rng.uniform(65.0, 67.0, 5)))
    with tempfile.TemporaryDirectory(prefix="roman-bench-lc-") as tmp:
        print(f"Parquet: {args.rows} rows in {args.epochs} batches ...", flush=True)
        pq = bench_parquet(simulate(args.rows, args.epochs), Path(tmp) / "lc", cones)
    ra, dec, variable = TRUTH["sources"]
    print(f"PostgreSQL: {args.rows} rows in {args.epochs} batches ...", flush=True)
    pg_server = Postgres()
    with pg_server as dsn:
        pg = bench_postgres(simulate(args.rows, args.epochs), dsn, cones)
        pg["size_mb"] = pg_server.size_mb()
    print(f"\n{'operation':<40}{'Parquet/HEALPix':>16}{'PostgreSQL':>12}{'ratio':>8}")
    for key, label in (
        ("write", f"write {pq['rows']:,} rows (s)"),
        ("indices", "compute variability indices (s)"),
        ("cone", 'cone 60" light curves, median (s)'),
        ("index_query", "index query chi2_red > 10 (s)"),
        ("size_mb", "on disk (MB)"),
    ):
        print(f"{label:<40}{pq[key]:>16.3f}{pg[key]:>12.3f}{pq[key] / pg[key]:>8.2f}")
    print(
        f"rows per cone: {pq['cone_rows']} / {pg['cone_rows']}; sources with chi2_red > 10: "
        f"{pq['n_loud']} / {pg['n_loud']} (true variables: {int(variable.sum())})"
    )
    print(
        "baseline: PostgreSQL 15 (ratio = Parquet / PostgreSQL; < 1 means Parquet is faster or smaller)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
