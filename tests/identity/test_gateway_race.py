"""Per-user totals under concurrency: one user's scale, adapt and new-cluster requests sent at the
same time, on two clusters, never give more real worker processes than the tier's total.

Real components: the identity stack's dask-gateway-server (UnsafeLocalBackend: every worker is a
local ``dask worker`` process) behind JupyterHub authentication. The test policy shrinks the
Research tier to 2 workers per cluster and 3 in total, so each repetition starts at most three
small workers; worker processes are counted from the operating system (their environment names
the cluster), not from what the gateway reports.
"""

from __future__ import annotations

import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from hub_config.policy import load_policy
from tests.support import identity as cf

REPETITIONS = int(__import__("os").environ.get("RACE_REPS", "20"))


def _gateway(stack, token: str):
    from dask_gateway import Gateway
    from dask_gateway.auth import JupyterHubAuth

    return Gateway(
        address=stack.gateway_url,
        proxy_address=stack.gateway_proxy,
        auth=JupyterHubAuth(api_token=token),
    )


def _worker_processes(cluster_names: set[str]) -> list[int]:
    """PIDs of live ``dask worker`` processes started for ``cluster_names``."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            cmd = p.info["cmdline"] or []
            if "worker" not in cmd or p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if p.environ().get("DASK_GATEWAY_CLUSTER_NAME") in cluster_names:
                found.append(p.info["pid"])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


class _Peak:
    """Samples the worker-process count in a thread until stopped; keeps the maximum."""

    def __init__(self, names: set[str]) -> None:
        self.names, self.peak, self._stop = names, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, len(_worker_processes(self.names)))
            self._stop.wait(0.05)

    def __enter__(self) -> _Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _wait_count(names: set[str], pred, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    n = len(_worker_processes(names))
    while not pred(n) and time.monotonic() < deadline:
        time.sleep(0.1)
        n = len(_worker_processes(names))
    return n


@pytest.mark.slow
def test_concurrent_scale_adapt_and_new_cluster_hold_the_total(stack):
    lim = load_policy(stack.policy_file).gateway_limits("research")
    assert (lim.max_workers, lim.max_total_workers, lim.max_clusters) == (2, 3, 2)  # shrunk policy
    cf.login(stack, "research")
    token = stack.user_token("research")
    gw = _gateway(stack, token)
    clusters = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # every cut request warns; the counts are what is checked
        try:
            # Three clusters asked for at once: the tier allows two.
            with ThreadPoolExecutor(3) as pool:
                futs = [
                    pool.submit(gw.new_cluster, worker_cores=1, worker_memory=1) for _ in range(3)
                ]
                results = []
                for f in futs:
                    try:
                        results.append(f.result(timeout=120))
                    except Exception as exc:
                        results.append(exc)
            clusters = [r for r in results if not isinstance(r, Exception)]
            refused = [r for r in results if isinstance(r, Exception)]
            assert len(clusters) == lim.max_clusters, results
            assert len(refused) == 1 and "cluster(s) at once" in str(refused[0])
            _race(clusters, lim)
        finally:
            for c in clusters:
                c.shutdown()
            gw.close()


def _race(clusters, lim) -> None:
    """REPETITIONS transitions, each two requests sent at once, cycling through: both clusters
    up (scale+scale, then scale+adapt) and one up while the other goes down (its workers are
    still stopping when the other's could start). The peak of live worker processes is sampled
    all along; after each transition the count settles where the totals say."""
    a, b = clusters
    names = {a.name, b.name}
    top, one = lim.max_total_workers, lim.max_workers
    # (request for A, request for B, worker processes once settled). When one cluster goes down
    # while the other goes up, the one going up gets what is free when its request is decided:
    # all of its own limit if the other's scale-down came first, else what the other leaves.
    cycle = [
        (lambda: a.scale(10000), lambda: b.scale(10000), {top}),
        (lambda: a.scale(0), lambda: b.scale(10000), {top - one, one}),
        (lambda: a.scale(10000), lambda: b.adapt(minimum=10000, maximum=10000), {top}),
        (lambda: a.scale(10000), lambda: b.scale(0), {top - one, one}),
    ]
    settled = []
    with ThreadPoolExecutor(2) as pool, _Peak(names) as peak:
        for rep in range(REPETITIONS):
            first, second, expected = cycle[rep % len(cycle)]
            order = (first, second) if rep % 8 < 4 else (second, first)
            for f in [pool.submit(r) for r in order]:
                f.result(timeout=60)
            n = _wait_count(names, lambda n, e=expected: n == max(e), 30)
            n = _wait_count(names, lambda n, e=expected: n in e, 60)
            time.sleep(1.0)  # a late, over-eager start would show here
            settled.append(n)
            assert n in expected, (rep, settled)
            assert peak.peak <= top, (rep, peak.peak, settled)
        for f in [pool.submit(c.scale, 0) for c in (a, b)]:
            f.result(timeout=60)
        assert _wait_count(names, lambda n: n == 0, 60) == 0
    assert peak.peak == top  # the total was reached, never passed
