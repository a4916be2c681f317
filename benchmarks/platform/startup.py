"""Local platform start-up figures, each as a ratio against a named baseline from the same run.

    .venv/bin/python benchmarks/platform/startup.py [--rounds N]

Figures (medians over the rounds; A and B alternate so drift on a shared machine hits both):
- cold start: ``roman-platform up`` with an empty state folder until the hub answers through the
  proxy, against BASELINE "bare hub": ``jupyterhub`` with the dummy authenticator and its own
  configurable-http-proxy, no gateway, no services, no settings;
- warm start: the same with the state folder of the previous run (DB, secrets exist);
- spawn: REST spawn request until the hub reports the server ready, against BASELINE "bare
  server": ``jupyter server`` started directly until its API answers;
- gateway cluster: ``Gateway().new_cluster()`` + ``scale(2)`` + 2 workers connected, inside a
  user's kernel, against BASELINE "LocalCluster": ``LocalCluster(n_workers=2)`` in that kernel.

The HTTP login, REST and kernel helpers are the platform tests' own (tests/platform/conftest.py),
so the benchmark drives the platform exactly as the tests do.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "platform_test_helpers", REPO / "tests" / "platform" / "conftest.py"
)
if _spec is None or _spec.loader is None:
    raise ImportError("tests/platform/conftest.py cannot be loaded")
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)

CLUSTER_CODE = """
import json, time
from dask_gateway import Gateway
from distributed import Client, LocalCluster
t = time.monotonic()
gw = Gateway(); cluster = gw.new_cluster(); cluster.scale(2)
client = cluster.get_client(); client.wait_for_workers(2, timeout=120)
t_gw = time.monotonic() - t
client.close(); cluster.shutdown()
t = time.monotonic()
lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
lclient = Client(lc); lclient.wait_for_workers(2, timeout=120)
t_local = time.monotonic() - t
lclient.close(); lc.close()
print("TIMES " + json.dumps({"gateway": t_gw, "local": t_local}))
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_200(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"baseline process exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(url)


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def bare_hub(workdir: Path) -> float:
    """BASELINE: plain JupyterHub + proxy, dummy login, to API ready through the proxy."""
    http, hub, api = _free_port(), _free_port(), _free_port()
    env = dict(os.environ, PATH=f"{REPO / '.local' / 'bin'}{os.pathsep}{os.environ['PATH']}")
    t = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterhub",
            "--ip=127.0.0.1",
            f"--port={http}",
            f"--JupyterHub.hub_port={hub}",
            f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{api}",
            "--JupyterHub.authenticator_class=dummy",
            f"--JupyterHub.db_url=sqlite:///{workdir}/h.db",
            f"--JupyterHub.cookie_secret_file={workdir}/cookie",
        ],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_200(f"http://127.0.0.1:{http}/hub/api/", proc)
        return time.monotonic() - t
    finally:
        stop(proc)


def bare_server(workdir: Path) -> float:
    """BASELINE: ``jupyter server`` started directly until GET /api answers."""
    port = _free_port()
    t = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            f"--port={port}",
            "--ip=127.0.0.1",
            "--no-browser",
            "--allow-root",
            "--IdentityProvider.token=",
            f"--ServerApp.root_dir={workdir}",
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_200(f"http://127.0.0.1:{port}/api", proc)
        return time.monotonic() - t
    finally:
        stop(proc)


def one_round(base: Path, i: int) -> dict[str, float]:
    import requests

    work, state = base / f"work{i}", base / f"state{i}"
    work.mkdir()
    figures: dict[str, float] = {}
    figures["bare_hub"] = bare_hub(Path(tempfile.mkdtemp(dir=base)))
    cold = helpers.RunningPlatform(work, state, helpers.platform_config()).start()
    figures["cold_start"] = cold.startup_seconds
    try:
        session = requests.Session()
        helpers.hub_login(session, cold.url, "alice")
        token = helpers.api_token(session, cold.url, "alice")
        t = time.monotonic()
        requests.post(
            f"{cold.url}/hub/api/users/alice/server",
            headers={"Authorization": f"token {token}"},
            timeout=60,
        ).raise_for_status()
        model = helpers.wait_for_server(cold.url, "alice", token, ready=True)
        figures["spawn"] = time.monotonic() - t
        figures["bare_server"] = bare_server(Path(tempfile.mkdtemp(dir=base)))
        out = helpers.run_in_kernel(f"{cold.url}{model['servers']['']['url']}", token, CLUSTER_CODE)
        times = json.loads(out.split("TIMES ", 1)[1])
        figures["gateway_cluster"], figures["local_cluster"] = times["gateway"], times["local"]
    finally:
        cold.stop()
    warm = helpers.RunningPlatform(work, state, helpers.platform_config()).start()
    figures["warm_start"] = warm.startup_seconds
    warm.stop()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds (default 2)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="rsp-bench-"))
    rounds = []
    try:
        for i in tqdm(range(max(1, min(args.rounds, 10))), desc="rounds"):
            rounds.append(one_round(base, i))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print(f"rounds: {len(rounds)}, cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    rows = [
        ("cold start (up -> hub ready)", "cold_start", "bare hub", "bare_hub"),
        ("warm start (existing state)", "warm_start", "bare hub", "bare_hub"),
        ("spawn (REST -> server ready)", "spawn", "bare jupyter server", "bare_server"),
        ("gateway cluster + 2 workers", "gateway_cluster", "LocalCluster(2)", "local_cluster"),
    ]
    for label, a, blabel, b in rows:
        print(
            f"{label:32s} {med[a]:6.2f} s   baseline {blabel:20s} {med[b]:6.2f} s   "
            f"ratio {med[a] / med[b]:5.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
