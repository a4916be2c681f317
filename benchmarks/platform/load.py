"""Load driver: N users log in through the OIDC flow, spawn servers and open kernels, N rising.

    nice -n 10 .venv/bin/python benchmarks/platform/load.py [--steps 2 4 8 12] [--round-timeout 300]

Starts its own local platform (``roman-platform up`` in a temporary folder, free ports) with as
many demo accounts as the largest step, then for each N, all at once in N threads, each user:
logs in (hub -> development OIDC provider -> hub), gets an API token, asks for a server
(a 429 from ``concurrent_spawn_limit`` is retried after its Retry-After: the queue), waits until
it is ready, starts a kernel and runs ``1+1``, and finally stops the server. It stops raising N at
the first step with an error. Printed per step: login / spawn / kernel latency p50, p95, p99,
errors, spawns refused with 429 and retried, hub and proxy CPU (% of one core, mean and max)
and RSS (max), and the machine's load average while it ran: the machine is shared, so every
figure carries the load it was measured under. The last line is JSON.

The login, REST and kernel helpers are the platform tests' own (tests/platform/conftest.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "platform_test_helpers", REPO / "tests" / "platform" / "conftest.py"
)
if _spec is None or _spec.loader is None:
    raise ImportError("tests/platform/conftest.py cannot be loaded")
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))], 2)


class Watcher(threading.Thread):
    """Samples the hub's and the proxy's CPU and memory every ``every`` seconds."""

    def __init__(self, supervisor_pid: int, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.supervisor_pid, self.every = supervisor_pid, every
        self.samples: dict[str, list[tuple[float, float]]] = {"hub": [], "proxy": []}
        self.stop_event = threading.Event()

    def _procs(self) -> dict[str, psutil.Process]:
        found = {}
        for p in psutil.Process(self.supervisor_pid).children(recursive=True):
            try:
                cmd = " ".join(p.cmdline())
            except psutil.Error:
                continue
            if "-m jupyterhub" in cmd:
                found["hub"] = p
            elif "configurable-http-proxy" in cmd and "node" in cmd.split()[0]:
                found["proxy"] = p
        return found

    def run(self) -> None:
        procs = self._procs()
        for p in procs.values():
            p.cpu_percent(None)
        while not self.stop_event.wait(self.every):
            for name, p in procs.items():
                try:
                    self.samples[name].append((p.cpu_percent(None), p.memory_info().rss / 2**20))
                except psutil.Error:
                    procs = self._procs()

    def summary(self) -> dict:
        out = {}
        for name, s in self.samples.items():
            if s:
                cpu = [c for c, _ in s]
                out[name] = {
                    "cpu_mean_pct": round(statistics.mean(cpu), 1),
                    "cpu_max_pct": round(max(cpu), 1),
                    "rss_max_mib": round(max(m for _, m in s), 1),
                }
        return out


def one_user(hub: str, user: str, deadline: float) -> dict:
    rec: dict = {"user": user, "retries_429": 0}
    try:
        s = requests.Session()
        t = time.monotonic()
        helpers.hub_login(s, hub, user)
        rec["login_s"] = time.monotonic() - t
        token = helpers.api_token(s, hub, user)
        headers = {"Authorization": f"token {token}"}
        t = time.monotonic()
        while True:
            r = requests.post(f"{hub}/hub/api/users/{user}/server", headers=headers, timeout=120)
            if r.status_code != 429:
                break
            rec["retries_429"] += 1
            if time.monotonic() > deadline:
                raise RuntimeError("still refused with 429 at the round's deadline")
            time.sleep(float(r.headers.get("Retry-After", "2")))
        if r.status_code not in (201, 202):
            raise RuntimeError(f"spawn: HTTP {r.status_code} {r.text[:200]}")
        model = helpers.wait_for_server(
            hub, user, token, ready=True, timeout=max(5.0, deadline - time.monotonic())
        )
        rec["spawn_s"] = time.monotonic() - t
        url = f"{hub}{model['servers']['']['url']}"
        t = time.monotonic()
        out = helpers.run_in_kernel(url, token, "print(1 + 1)", timeout=120)
        if out.strip() != "2":
            raise RuntimeError(f"kernel said {out!r}")
        rec["kernel_s"] = time.monotonic() - t
        requests.delete(f"{hub}/hub/api/users/{user}/server", headers=headers, timeout=120)
        helpers.wait_for_server(hub, user, token, ready=False, timeout=120)
    except Exception as exc:
        rec["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[2, 4, 8, 12])
    ap.add_argument("--round-timeout", type=float, default=300.0)
    args = ap.parse_args()
    users = [f"load{i:02d}" for i in range(1, max(args.steps) + 1)]
    work = Path(tempfile.mkdtemp(prefix="roman-load-"))
    (work / "w").mkdir()
    config = helpers.platform_config(
        demo={"users": users, "admin_users": ["admin"], "password": helpers.DEMO_PASSWORD}
    )
    platform = helpers.RunningPlatform(work / "w", work / "state", config).start()
    print(f"platform up in {platform.startup_seconds:.1f} s at {platform.url}", flush=True)
    results = []
    try:
        for n in args.steps:
            watcher = Watcher(platform.proc.pid)
            watcher.start()
            load0 = os.getloadavg()[0]
            t0 = time.monotonic()
            deadline = t0 + args.round_timeout
            with ThreadPoolExecutor(n) as pool:
                recs = list(pool.map(one_user, [platform.url] * n, users[:n], [deadline] * n))
            watcher.stop_event.set()
            watcher.join(5)
            errors = [r["error"] for r in recs if "error" in r]
            row = {
                "users": n,
                "wall_s": round(time.monotonic() - t0, 1),
                "errors": len(errors),
                "retries_429": sum(r["retries_429"] for r in recs),
                "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
                "cores": os.cpu_count(),
            }
            for key in ("login_s", "spawn_s", "kernel_s"):
                v = [r[key] for r in recs if key in r]
                row[key] = {"p50": pct(v, 50), "p95": pct(v, 95), "p99": pct(v, 99)}
            row.update(watcher.summary())
            results.append(row)
            print(json.dumps(row), flush=True)
            for e in errors[:3]:
                print("  error:", e, flush=True)
            if errors:
                print(f"first failure at N={n}", flush=True)
                break
    finally:
        platform.stop()
    print(json.dumps({"load": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
