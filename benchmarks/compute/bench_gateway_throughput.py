"""A many-product job on a Dask-Gateway cluster next to the store vs in the notebook process.

One run measures both, on the same products in the same S3 store:

* baseline: the job in this process, one product after another (what a notebook does without
  a cluster);
* the platform's way: the same function mapped over the products on a dask-gateway-server
  cluster (``hub_config.gateway.configure_gateway`` over UnsafeLocalBackend, workers given the
  store settings through ``data_environment`` exactly as on the local platform).

The job per product: read it from the store (SeaweedFS, S3 API) and open it, sigma-clipped background and
noise, count sources above 5 sigma. Printed: wall seconds of both, their ratio (baseline /
gateway: above 1 the cluster is faster), the cluster's start-up, and the S3 bytes the workers
read per second (all bytes over the job's wall time, and per task while reading).

Run: ``nice -n 10 .venv/bin/python benchmarks/compute/bench_gateway_throughput.py
[--products 16] [--size 256] [--workers 2]``. Needs nothing running; starts and stops its own
SeaweedFS and gateway on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

GATEWAY_CONFIG = """
from hub_config.gateway import configure_gateway, data_environment
c.DaskGateway.address = "127.0.0.1:{private}"
c.Proxy.address = "127.0.0.1:{http}"
c.Proxy.tcp_address = "127.0.0.1:{tcp}"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.SimpleAuthenticator.password = "bench"
configure_gateway(c, "dask_gateway_server.backends.local.UnsafeLocalBackend")
c.UnsafeLocalBackend.clusters_directory = "{state}/clusters"
c.UnsafeLocalBackend.stop_clusters_on_shutdown = True
c.UnsafeLocalBackend.inherited_environment = ["PATH", "PYTHONPATH", "VIRTUAL_ENV", "LANG", "HOME"]
c.ClusterConfig.scheduler_cmd = ["{bin}/dask", "scheduler"]
c.ClusterConfig.worker_cmd = ["{bin}/dask", "worker"]
c.ClusterConfig.worker_memory = "1 G"
c.ClusterConfig.environment = data_environment({env!r})
"""


def measure(product: dict) -> dict:
    """The per-product job (runs in this process or on a worker)."""
    import io

    import asdf
    import numpy as np
    from astropy.stats import sigma_clipped_stats
    from scipy import ndimage

    from platform_lib import data

    store = data.get_store(product["store"])
    t0 = time.perf_counter()
    raw = store.read_bytes(product["path"])  # the whole product, once: the bytes S3 sends
    t_read = time.perf_counter() - t0
    with asdf.open(io.BytesIO(raw), lazy_load=False, memmap=False) as af:
        pixels = np.asarray(af["roman"]["data"], dtype=float)
    _, median, std = sigma_clipped_stats(pixels, sigma=3)
    _, n = ndimage.label(pixels > median + 5 * std)
    return {"bytes": len(raw), "read_s": t_read, "sources": int(n), "background": float(median)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stage(env: dict[str, str], n: int, size: int, folder: Path) -> list[dict]:
    import astropy.units as u
    from astropy.time import Time
    from tqdm import tqdm

    from platform_lib.data import get_store
    from platform_lib.sample import make_exposure

    store = get_store(env["ROMAN_DATA_URL"])
    t0 = Time("2027-03-01T00:00:00", scale="utc")
    products = []
    for i in tqdm(range(n), desc="simulating products", disable=not sys.stderr.isatty()):
        det = f"WFI{1 + i % 18:02d}"
        _, l2 = make_exposure(
            det,
            "F158",
            270.0 + 0.001 * (i // 18),
            66.0,
            t0 + i * u.minute,
            program=7,
            visit=1 + i // 18,
            exposure=1,
            size=size,
            seed=i + 1,
        )
        local = folder / f"r00007{1 + i // 18:03d}0001_{det.lower()}_f158_cal.asdf"
        l2.save(local)
        rel = store.put_file(local, f"bench/L2/{local.name}")
        products.append({"path": rel, "store": store.url("")})
    return products


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--products", type=int, default=16, help="products in the job (default 16)")
    ap.add_argument("--size", type=int, default=256, help="pixels per side of each product (256)")
    ap.add_argument("--workers", type=int, default=2, help="gateway workers (default 2)")
    args = ap.parse_args()

    from dask_gateway import BasicAuth, Gateway

    from hub_config.local.seaweedfs import SeaweedFS

    with (
        tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp,
        SeaweedFS(Path(tmp) / "s3", buckets=("roman",)) as s3,
    ):
        env = s3.client_env()
        os.environ.update(env)
        products = _stage(env, args.products, args.size, Path(tmp))

        # Baseline: the job in this process.
        measure(products[0])  # imports and first connection are not the job
        t0 = time.perf_counter()
        local = [measure(p) for p in products]
        t_local = time.perf_counter() - t0

        ports = {k: _free_port() for k in ("private", "http", "tcp")}
        cfg = Path(tmp) / "gateway_config.py"
        cfg.write_text(GATEWAY_CONFIG.format(state=tmp, bin=BIN, env=env, **ports))
        log = (Path(tmp) / "gateway.log").open("w")
        proc = subprocess.Popen(
            [str(BIN / "dask-gateway-server"), "-f", str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            start_new_session=True,
        )
        try:
            gw = Gateway(
                address=f"http://127.0.0.1:{ports['http']}",
                proxy_address=f"gateway://127.0.0.1:{ports['tcp']}",
                auth=BasicAuth("bench", "bench"),
            )
            deadline = time.monotonic() + 60
            while True:
                try:
                    gw.list_clusters()
                    break
                except Exception:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.5)
            t0 = time.perf_counter()
            cluster = gw.new_cluster()
            cluster.scale(args.workers)
            client = cluster.get_client()
            client.wait_for_workers(args.workers, timeout=180)
            t_start = time.perf_counter() - t0
            client.gather(client.map(measure, products[: args.workers], pure=False))  # warm imports
            t0 = time.perf_counter()
            remote = client.gather(client.map(measure, products, pure=False))
            t_gateway = time.perf_counter() - t0
            client.close()
            cluster.shutdown()
            gw.close()
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()

    assert [r["sources"] for r in remote] == [r["sources"] for r in local]  # same job, same answer
    total = sum(r["bytes"] for r in remote)
    figures = {
        "products": args.products,
        "size_px": args.size,
        "workers": args.workers,
        "mib_per_product": round(total / len(remote) / 2**20, 2),
        "in_process_s": round(t_local, 2),
        "gateway_s": round(t_gateway, 2),
        "ratio_in_process_over_gateway": round(t_local / t_gateway, 2),
        "gateway_cluster_start_s": round(t_start, 2),
        "products_per_s_in_process": round(args.products / t_local, 2),
        "products_per_s_gateway": round(args.products / t_gateway, 2),
        "worker_s3_mib_per_s_over_job": round(total / t_gateway / 2**20, 1),
        "worker_s3_mib_per_s_while_reading": round(
            total / sum(r["read_s"] for r in remote) / 2**20, 1
        ),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
