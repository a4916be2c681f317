"""kill -9 of each component while a user's kernel and Dask cluster run: the session survives.

Before, killing the hub, the gateway, SeaweedFS or the OIDC provider made the supervisor stop
everything and every notebook and kernel died. Now each is restarted with back-off
(hub_config/local/restarts.py) and, on the same databases, re-adopts what was running: the hub its
user servers (from the spawners' saved state), the gateway its clusters. The test holds one
kernel with a live variable and a Dask-Gateway cluster client through all four crashes, then
stops the platform with Ctrl-C and checks that no process is left.
"""

from __future__ import annotations

import json
import os
import signal
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


@pytest.mark.slow
def test_kill_each_component_the_session_survives(start_platform, hub_api):
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
    assert platform.stop() == 0
    assert not platform.leftovers(), platform.leftovers()
