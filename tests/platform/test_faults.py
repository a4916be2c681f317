"""kill -9 of each component while a user's kernel and Dask cluster run: the session survives.

Before, killing the hub, the gateway, SeaweedFS or the OIDC provider made the supervisor stop
everything and every notebook and kernel died. Now each is restarted with back-off
(hub_config/local/restarts.py) and, on the same databases, re-adopts what was running: the hub its
user servers (from the spawners' saved state), the gateway its clusters. The test holds one
kernel with a live variable and a Dask-Gateway cluster client through all four crashes, then
stops the platform with Ctrl-C and checks that no process is left.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import threading
import time

import psutil
import pytest
import requests

SETUP = """
from dask_gateway import Gateway
gateway = Gateway()
cluster = gateway.new_cluster()
cluster.scale(1)
client = cluster.get_client()
client.wait_for_workers(1, timeout=120)
marker = 41
print("CLUSTER", cluster.name)
"""

CHECK = """
import time as _t
for _i in range(60):  # the client reconnects through the restarted gateway's proxy
    try:
        _v = client.submit(lambda v: v * 2, marker, pure=False).result(timeout=20)
        break
    except Exception as _e:
        _err = _e
        _t.sleep(2)
else:
    raise _err
print("OK", marker + 1, _v, [c.name for c in gateway.list_clusters()])
"""

COMPONENTS = [  # (component, how to recognise its root process among the supervisor's children)
    ("dask-gateway", "dask_gateway_server"),
    ("seaweedfs", "weed"),
    ("oidc", "oidc_dev"),
    ("jupyterhub", "jupyterhub"),
]


def _root(supervisor_pid: int, needle: str) -> psutil.Process:
    for p in psutil.Process(supervisor_pid).children():
        try:
            if any(needle in part for part in p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE:
                return p
        except psutil.Error:
            continue
    raise AssertionError(f"no running child matching {needle!r}")


def _wait_restarted(platform, needle: str, old_pid: int, timeout: float = 180.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            new = _root(platform.proc.pid, needle)
            if new.pid != old_pid and requests.get(f"{platform.url}/hub/api/", timeout=5).ok:
                return time.monotonic() - t0
        except (AssertionError, requests.RequestException):
            pass
        assert platform.proc.poll() is None, "the supervisor exited:\n" + "".join(
            platform.output[-30:]
        )
        time.sleep(0.5)
    raise AssertionError(
        f"{needle} not restarted within {timeout} s:\n" + "".join(platform.output[-30:])
    )


def _reconnect(kernel, token: str) -> None:
    """A new websocket to the same kernel (the old one dies with the proxy)."""
    import websocket

    try:
        kernel.ws.close()
    except Exception:
        pass
    url = kernel.server_url.replace("http://", "ws://") + f"api/kernels/{kernel.kernel_id}/channels"
    for _ in range(60):
        try:
            kernel.ws = websocket.create_connection(
                url, header=[f"Authorization: token {token}"], timeout=kernel.timeout
            )
            return
        except Exception:
            time.sleep(1)
    raise AssertionError("could not reconnect to the kernel")


STEP = 1.0  # the quota sampler's interval in this test (seconds)
SERVER_CORES = 0.5  # the default profile of an Entry user ('small', hub_config/policy.yaml)


def _utc(ts: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return t.astimezone(dt.UTC).replace(tzinfo=None)


def _ledger(state) -> dict[str, float]:
    """Core-seconds charged per key, read from the quota database."""
    with sqlite3.connect(state / "quota.sqlite") as con:
        rows = con.execute("SELECT key, SUM(core_hours) FROM usage GROUP BY key").fetchall()
    return {k: 3600 * v for k, v in rows}


def _gateway_truth(state, cluster: str) -> tuple[float, int]:
    """Core-seconds the cluster's processes ran, from the gateway's own start/stop times (each
    process was re-adopted, none died, so its row's times are the process's), and the rows."""
    settings = json.loads((state / "settings.json").read_text())
    db = settings["gateway"]["db_url"].replace("sqlite:///", "")
    with sqlite3.connect(db) as con:
        cfg, start, stop = con.execute(
            "SELECT config, start_time, stop_time FROM clusters WHERE name = ?", (cluster,)
        ).fetchone()
        workers = con.execute(
            "SELECT w.start_time, w.stop_time FROM workers w JOIN clusters c "
            "ON w.cluster_id = c.id WHERE c.name = ?",
            (cluster,),
        ).fetchall()
    cfg = json.loads(cfg)
    assert stop is not None and all(w[1] is not None for w in workers), "cluster not stopped"
    truth = cfg.get("scheduler_cores", 1) * (stop - start) / 1000
    truth += sum(cfg.get("worker_cores", 1) * (b - a) / 1000 for a, b in workers)
    return truth, 1 + len(workers)


def _server_process(platform, user: str) -> psutil.Process:
    """The user's jupyterhub-singleuser process among the supervisor's descendants."""
    for p in psutil.Process(platform.proc.pid).children(recursive=True):
        try:
            if any("jupyterhub-singleuser" in a for a in p.cmdline()) and (
                p.environ().get("JUPYTERHUB_USER") == user
            ):
                return p
        except psutil.Error:
            continue
    raise AssertionError(f"no server process of {user}")


def _watch_until_dead(proc: psutil.Process, timeout: float = 60.0) -> dt.datetime:
    """Poll every 20 ms until the process is gone (or a zombie); the moment, in UTC."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    else:
        raise AssertionError(f"process {proc.pid} still running after {timeout} s")
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@pytest.mark.slow
def test_kill_each_component_the_session_survives(start_platform, hub_api, tmp_path, monkeypatch):
    qsettings = tmp_path / "quota.yaml"
    qsettings.write_text(json.dumps({"sample_interval_s": STEP}))
    monkeypatch.setenv("ROMAN_QUOTA_SETTINGS", str(qsettings))  # a metered run, 1 s steps
    platform = start_platform()
    hub = platform.url
    token, server_url = hub_api.login_and_spawn(hub, "alice")
    headers = {"Authorization": f"token {token}"}
    kernel = hub_api.kernel(server_url, token)
    try:
        cluster = kernel.execute(SETUP).split("CLUSTER ", 1)[1].strip()
        platform.track()
        times = {}
        for name, needle in COMPONENTS:
            old = _root(platform.proc.pid, needle)
            platform.track()
            os.kill(old.pid, signal.SIGKILL)
            times[name] = _wait_restarted(platform, needle, old.pid)
            platform.track()
            _reconnect(kernel, token)
            out = kernel.execute(CHECK)
            assert out.startswith("OK 42 82"), (name, out)
            assert cluster in out, f"cluster lost after killing {name}: {out}"
        # the hub restarted on its database and re-adopted the server: same kernel, still ready
        model = hub_api.wait_for_server(hub, "alice", token, ready=True)
        assert f"{hub}{model['servers']['']['url']}" == server_url
        r = requests.get(f"{server_url}api/kernels/{kernel.kernel_id}", headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        print("restart after kill -9 (s):", json.dumps({k: round(v, 1) for k, v in times.items()}))
        kernel.execute("client.close(); cluster.shutdown()")
    finally:
        kernel.close()
    # The ledger through all four crashes: exact within one sampling step per process.
    server = _server_process(platform, "alice")
    # the process watcher's truth, watching from before the stop: the hub answers the DELETE
    # only once its spawner's poll has seen the process gone (0.75 s after it died, measured)
    died: list[dt.datetime] = []
    watcher = threading.Thread(target=lambda: died.append(_watch_until_dead(server)), daemon=True)
    watcher.start()
    r = requests.delete(f"{hub}/hub/api/users/alice/server", headers=headers, timeout=60)
    assert r.status_code in (202, 204), r.text
    watcher.join(70)
    assert died, "the server process did not die within 60 s of the stop"
    server_stopped = died[0]
    hub_api.wait_for_server(hub, "alice", token, ready=False)
    time.sleep(4 * STEP)
    ledger = _ledger(platform.state_dir)
    server_truth = (
        SERVER_CORES * (server_stopped - _utc(model["servers"][""]["started"])).total_seconds()
    )
    cluster_truth, processes = _gateway_truth(platform.state_dir, cluster)
    cluster_charged = sum(v for k, v in ledger.items() if k.startswith(f"gateway:{cluster}:"))
    figures = {
        "server_charged_core_s": round(ledger.get("hub:alice/", 0.0), 1),
        "server_true_core_s": round(server_truth, 1),
        "cluster_charged_core_s": round(cluster_charged, 1),
        "cluster_true_core_s": round(cluster_truth, 1),
    }
    print("ledger through the crashes:", json.dumps(figures))
    # the server: from the hub's start of the spawn to the process's death
    # within one sampling step (a vanished process is closed at its last sighting) plus 0.25 s
    # for the pollers' own timing: the watcher looks every 20 ms, and a slow tick (its work on a
    # loaded machine, 0.1-0.3 s) moves the sighting it records off its schedule
    assert abs(ledger.get("hub:alice/", 0.0) - server_truth) <= SERVER_CORES * (STEP + 0.25), (
        figures
    )
    assert abs(cluster_charged - cluster_truth) <= processes * STEP, figures
    assert platform.stop() == 0
    assert not platform.leftovers(), platform.leftovers()
