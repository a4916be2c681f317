"""The local platform end to end: login, spawn, a real kernel, a Dask-Gateway cluster, shutdown."""

from __future__ import annotations

import json

import pytest
import requests

N = 2_000_000

KERNEL_CODE = f"""
import json, os, time
from dask_gateway import Gateway
import dask.array as da

t0 = time.monotonic()
gateway = Gateway()  # no arguments: address, proxy and auth come from the spawner's environment
cluster = gateway.new_cluster()
t_cluster = time.monotonic() - t0
t1 = time.monotonic()
cluster.scale(2)
client = cluster.get_client()
client.wait_for_workers(2, timeout=120)
t_scale = time.monotonic() - t1
x = da.arange({N}, chunks={N} // 8, dtype="int64")
total = int(x.sum().compute())
workers = len(client.scheduler_info()["workers"])
listed = [c.name for c in gateway.list_clusters()]
print("REPORT " + json.dumps(dict(
    total=total, workers=workers, cluster=cluster.name, listed=listed, t_cluster=t_cluster,
    t_scale=t_scale, cwd=os.getcwd(), data_url=os.environ.get("ROMAN_DATA_URL"))))
"""

SHUTDOWN_CODE = """
client.close()
cluster.shutdown()
print("AFTER " + json.dumps([c.name for c in gateway.list_clusters()]))
"""


@pytest.mark.slow
def test_login_spawn_kernel_gateway_and_clean_shutdown(start_platform, login, hub_api):
    platform = start_platform()
    hub = platform.url
    settings = json.loads((platform.state_dir / "settings.json").read_text())
    gateway_url = settings["gateway"]["address"]

    # A wrong password is refused by the hub's login form and creates no session.
    bad = requests.Session()
    with pytest.raises(AssertionError, match="login of alice failed"):
        login(bad, hub, "alice", password="not-the-password")

    session = requests.Session()
    login(session, hub, "alice")
    token = hub_api.token(session, hub, "alice")
    headers = {"Authorization": f"token {token}"}

    # Spawn through the REST API.
    r = requests.post(f"{hub}/hub/api/users/alice/server", headers=headers, timeout=60)
    assert r.status_code in (201, 202), r.text
    model = hub_api.wait_for_server(hub, "alice", token, ready=True)
    server_url = f"{hub}{model['servers']['']['url']}"
    platform.track()

    bob = requests.Session()
    login(bob, hub, "bob")
    bob_token = hub_api.token(bob, hub, "bob")

    # Real kernel, real gateway cluster as alice, 2 workers, a dask sum checked.
    with hub_api.kernel(server_url, token) as kernel:
        report = json.loads(kernel.execute(KERNEL_CODE).split("REPORT ", 1)[1])
        platform.track()
        assert report["total"] == N * (N - 1) // 2
        assert report["workers"] == 2
        assert report["cluster"] in report["listed"]
        assert report["cwd"] == str(platform.state_dir / "users" / "alice")
        assert report["data_url"], "spawner did not pass ROMAN_DATA_URL"
        print(
            f"gateway cluster start {report['t_cluster']:.2f} s, "
            f"scale to 2 workers {report['t_scale']:.2f} s"
        )

        # The gateway knows users through the hub: alice sees her cluster, bob does not.
        name = report["cluster"]
        r = requests.get(
            f"{gateway_url}/api/v1/clusters/",
            headers={"Authorization": f"jupyterhub {token}"},
            timeout=30,
        )
        assert r.status_code == 200 and name in r.json(), r.text
        r = requests.get(
            f"{gateway_url}/api/v1/clusters/",
            headers={"Authorization": f"jupyterhub {bob_token}"},
            timeout=30,
        )
        assert r.status_code == 200 and name not in r.json(), r.text
        r = requests.delete(
            f"{gateway_url}/api/v1/clusters/{name}",
            headers={"Authorization": f"jupyterhub {bob_token}"},
            timeout=30,
        )
        assert r.status_code in (403, 404), f"bob could stop alice's cluster: {r.status_code}"

        after = json.loads(kernel.execute(SHUTDOWN_CODE).split("AFTER ", 1)[1])
        assert name not in after

    # A forged token is refused with 401 (not a server error).
    r = requests.get(
        f"{gateway_url}/api/v1/clusters/",
        headers={"Authorization": "jupyterhub forged-token"},
        timeout=30,
    )
    assert r.status_code == 401
    # ... and a real token of alice's that lacks access to the gateway service is refused too.
    xsrf = session.cookies.get("_xsrf", path="/hub/") or session.cookies.get("_xsrf")
    r = session.post(
        f"{hub}/hub/api/users/alice/tokens",
        json={"note": "no gateway", "scopes": ["read:users:name!user=alice"]},
        headers={"X-XSRFToken": xsrf},
        timeout=30,
    )
    assert r.status_code in (200, 201), r.text
    narrow = r.json()["token"]
    r = requests.get(
        f"{gateway_url}/api/v1/clusters/",
        headers={"Authorization": f"jupyterhub {narrow}"},
        timeout=30,
    )
    assert r.status_code == 401

    # Stop the server through the REST API, then the platform with Ctrl-C.
    r = requests.delete(f"{hub}/hub/api/users/alice/server", headers=headers, timeout=60)
    assert r.status_code in (202, 204), r.text
    hub_api.wait_for_server(hub, "alice", token, ready=False)

    assert platform.stop() == 0
    assert not platform.leftovers(), platform.leftovers()
    assert len(platform.seen_pids) >= 3  # hub, proxy, gateway at least were tracked
