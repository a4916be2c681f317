"""Attack 8 (hygiene): state files readable by other accounts, listeners beyond loopback.

Against the running platform with a Dask cluster and a worker up, so the gateway's schedulers
and workers (and their multiprocessing children) are among the processes checked.
"""

from __future__ import annotations

import stat
import time

import psutil
import pytest

LOOPBACK = {"127.0.0.1", "::1"}


@pytest.fixture(scope="module")
def busy_platform(quota_platform, user_gateway):
    qp = quota_platform
    gw = user_gateway(qp, "carol")
    cluster = gw.new_cluster()
    cluster.scale(1)
    client = cluster.get_client()
    try:
        client.wait_for_workers(1, timeout=120)
        assert client.submit(sum, [1, 2]).result(timeout=60) == 3
        yield qp
    finally:
        client.close()
        cluster.shutdown()
        gw.close()


def _platform_processes(qp) -> list[psutil.Process]:
    root = psutil.Process(qp.running.proc.pid)
    procs = [root, *root.children(recursive=True)]
    # gateway schedulers/workers start in their own sessions: find them by their cluster folder
    state = str(qp.state)
    for p in psutil.process_iter(["cmdline", "cwd"]):
        try:
            if (p.info["cwd"] or "").startswith(state) and p not in procs:
                procs.append(p)
        except psutil.Error:
            continue
    return procs


def test_every_listener_is_on_loopback(busy_platform):
    qp = busy_platform
    time.sleep(1)
    wide = []
    seen = 0
    for p in _platform_processes(qp):
        try:
            conns = p.net_connections(kind="inet")
            cmd = " ".join(p.cmdline())[:160]
        except psutil.Error:
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN:
                seen += 1
                if c.laddr.ip not in LOOPBACK:
                    parent = " ".join(p.parent().cmdline())[:200] if p.parent() else ""
                    wide.append(f"{p.pid} {c.laddr.ip}:{c.laddr.port} {cmd} (child of: {parent})")
    assert seen >= 8, seen  # hub, proxy, gateway, quota, provider, S3, scheduler, worker...
    assert not wide, "listening beyond loopback:\n" + "\n".join(wide)


def test_state_files_are_private_to_the_platform_account(busy_platform):
    qp = busy_platform
    loose = []
    for path in qp.state.rglob("*"):
        if path.is_symlink() or not path.exists():
            continue
        mode = path.stat().st_mode
        if (
            path.is_file()
            and (
                path.suffix in (".sqlite", ".db") or "sqlite" in path.name or "secret" in str(path)
            )
            and mode & 0o077
        ):
            loose.append(f"{stat.filemode(mode)} {path}")
    assert not loose, "readable by other accounts:\n" + "\n".join(loose)
