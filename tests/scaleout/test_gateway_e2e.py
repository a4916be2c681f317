"""Scale-out next to the data, end to end on the local platform.

``roman-platform up`` (SeaweedFS, the OIDC provider, JupyterHub, dask-gateway-server), a user
logged in through the OIDC flow, a spawned JupyterLab server, a kernel in it that starts a
Dask-Gateway cluster; the workers search the product index, open products and cut them out of
the SeaweedFS store, and write under the user's own prefix; tutorial 03 then runs in the same
kernel on the same gateway. A second user's workers must not read the first user's space.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
import requests

from hub_config.gateway import data_environment

N_PRODUCTS = 4  # four dithered epochs of one detector, 64-pixel cutouts: small, but real products
RA, DEC = 270.0, 66.0


def _stage_survey(env: dict[str, str], folder) -> list[str]:
    """The operator's part: a few simulated L2 products in the survey store, indexed."""
    import astropy.units as u
    from astropy.time import Time

    from platform_lib.data import build_index, get_store
    from platform_lib.sample import make_exposure

    store = get_store(
        env["ROMAN_DATA_URL"],
        endpoint=env["ROMAN_DATA_S3_ENDPOINT"],
        key=env["AWS_ACCESS_KEY_ID"],
        secret=env["AWS_SECRET_ACCESS_KEY"],
    )
    t0 = Time("2027-03-01T00:00:00", scale="utc")
    paths = []
    for n in range(N_PRODUCTS):
        epoch, detector = n, "WFI01"
        _, l2 = make_exposure(
            detector,
            "F158",
            RA + 0.0011 * epoch,
            DEC + 0.0007 * epoch,
            t0 + epoch * u.day,
            program=7,
            visit=epoch + 1,
            exposure=1,
            size=64,
            seed=n + 1,
        )
        local = folder / f"r00007{epoch + 1:03d}0001_{detector.lower()}_f158_cal.asdf"
        l2.meta.filename = local.name
        l2.save(local)
        paths.append(store.put_file(local, f"survey/L2/{local.name}"))
    build_index(store, progress=False)
    return paths


START_CLUSTER = """
import json, os
from dask_gateway import Gateway
gateway = Gateway()  # address, proxy and auth from the spawner's environment
cluster = gateway.new_cluster()
cluster.scale(2)
client = cluster.get_client()
client.wait_for_workers(2, timeout=240)
print("CLUSTER " + json.dumps({"name": cluster.name, "dashboard": cluster.dashboard_link,
                               "server_env": dict(os.environ)}))
"""

WORKER_JOB = """
def on_worker(i):
    import os
    import numpy as np
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from distributed import get_worker
    from platform_lib import data
    from platform_lib.compute import user_store_url

    everything = data.search(level="L2")
    centre = SkyCoord(np.mean(everything["ra_center"]), np.mean(everything["dec_center"]), unit="deg")
    rows = data.search((centre, 1 * u.arcmin), level="L2")
    row = rows[i % len(rows)]
    with data.open(row) as model:
        shape = list(np.asarray(model.data).shape)
    cut = data.cutout(row, SkyCoord(float(row["ra_center"]), float(row["dec_center"]), unit="deg"), 16)
    out = data.get_store(user_store_url())
    out.write_bytes(f"e2e/cutout_{i}.npy", np.ascontiguousarray(cut.data).tobytes())
    return {"worker": get_worker().address, "pid": os.getpid(), "n_found": len(rows),
            "path": str(row["path"]), "shape": shape, "cut_shape": list(cut.data.shape),
            "finite": int(np.isfinite(cut.data).sum()), "env": dict(os.environ)}

results = client.gather(client.map(on_worker, range(8), pure=False))
print("WORKERS " + json.dumps(results))
"""

READ_OTHERS = """
def read_other(url):
    import fsspec, os
    opts = {"key": os.environ.get("AWS_ACCESS_KEY_ID"), "secret": os.environ.get("AWS_SECRET_ACCESS_KEY"),
            "client_kwargs": {"endpoint_url": os.environ.get("ROMAN_DATA_S3_ENDPOINT")}}
    try:
        with fsspec.open(url, "rb", **opts) as f:
            return {"read": len(f.read())}
    except Exception as exc:  # the refusal is what is expected
        return {"refused": type(exc).__name__ + ": " + str(exc)[:200]}

print("OTHER " + json.dumps(client.submit(read_other, {url!r}, pure=False).result(timeout=120)))
"""

SHUTDOWN = """
client.close()
cluster.shutdown()
print("DOWN " + json.dumps([c.name for c in gateway.list_clusters()]))
"""


def _report(out: str, tag: str):
    return json.loads(out.split(tag + " ", 1)[1].splitlines()[0])


def _spawn(hub: str, user: str, login, hub_api) -> tuple[str, str]:
    session = requests.Session()
    login(session, hub, user)  # the OIDC flow: hub -> provider's form -> hub
    token = hub_api.token(session, hub, user)
    r = requests.post(
        f"{hub}/hub/api/users/{user}/server",
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )
    assert r.status_code in (201, 202), r.text
    model = hub_api.wait_for_server(hub, user, token, ready=True, timeout=180)
    return f"{hub}{model['servers']['']['url']}", token


def _tutorial_cells() -> list[str]:
    from pathlib import Path

    import nbformat

    nb = nbformat.read(
        Path(__file__).parents[2] / "notebooks" / "03_scale_out_with_dask.ipynb", as_version=4
    )
    return [c.source for c in nb.cells if c.cell_type == "code"]


@pytest.mark.slow
@pytest.mark.browser
def test_gateway_workers_read_the_store_and_run_tutorial_03(
    start_platform, login, hub_api, browser, tmp_path
):
    platform = start_platform()
    hub = platform.url
    settings = json.loads((platform.state_dir / "settings.json").read_text())
    env = settings["singleuser"]["environment"]
    staged = _stage_survey(env, tmp_path)

    server_url, token = _spawn(hub, "alice", login, hub_api)
    with hub_api.kernel(server_url, token, timeout=420) as kernel:
        info = _report(kernel.execute(START_CLUSTER), "CLUSTER")
        server_env = info["server_env"]
        platform.track()
        # The dashboard link is under the gateway's public address and routed to the dashboard
        # (issue 20 may put a credential in front of it: then it answers 401/403, never 404).
        public = server_env["DASK_GATEWAY__PUBLIC_ADDRESS"].rstrip("/")
        assert info["dashboard"].startswith(public + "/clusters/" + info["name"])
        r = requests.get(info["dashboard"], timeout=60)
        assert r.status_code in (200, 401, 403), r.status_code
        # JupyterLab's Dask panel finds it: dask-labextension's own check, in alice's server.
        check = requests.get(
            f"{server_url}dask/dashboard-check/{quote(info['dashboard'], safe='')}",
            headers={"Authorization": f"token {token}"},
            timeout=60,
        )
        assert check.status_code == 200, check.text
        if r.status_code == 200:
            assert check.json()["isActive"] and check.json()["plots"], check.text
            # In the browser: the dashboard's page loads and its Bokeh document connects (its
            # websocket goes through the same proxy).
            page = browser.new_page()
            try:
                page.goto(info["dashboard"], timeout=120_000)
                page.wait_for_function(
                    "() => window.Bokeh && Bokeh.documents && Bokeh.documents.length > 0",
                    timeout=120_000,
                )
                assert "Dask" in page.title(), page.title()
            finally:
                page.close()
        # ... and its cluster manager starts gateway clusters (the panel's NEW button).
        panel = requests.get(
            f"{server_url}dask/clusters", headers={"Authorization": f"token {token}"}, timeout=60
        )
        assert panel.status_code == 200, panel.text

        results = _report(kernel.execute(WORKER_JOB), "WORKERS")
        assert len({r["worker"] for r in results}) == 2, "both workers took part"
        for r in results:
            assert r["n_found"] == N_PRODUCTS and r["path"] in staged
            assert r["shape"] == [64, 64] and r["cut_shape"] == [16, 16] and r["finite"] > 0
            # Workers have exactly the data environment the spawner gave alice's server ...
            assert data_environment(r["env"]) == data_environment(server_env), sorted(
                set(data_environment(r["env"]).items()) ^ set(data_environment(server_env).items())
            )
            # ... and nothing that lets them act as her elsewhere.
            assert "JUPYTERHUB_API_TOKEN" not in r["env"] and "JPY_API_TOKEN" not in r["env"]
        assert server_env.get("ROMAN_DATA_URL") and server_env.get("AWS_ACCESS_KEY_ID")

        # Tutorial 03, cell by cell, in this kernel: on the real gateway, in a user server.
        kernel.execute(SHUTDOWN)
        for source in _tutorial_cells():
            kernel.execute(source)
        out = kernel.execute("print('ROWS', len(results), user_store_url('tutorials', '03'))")
        assert out.split()[1] == str(N_PRODUCTS)
        alice_results = out.split()[2] + "/area_measurements.ecsv"
        assert gateway_was_used(kernel)

    # A second user's workers: alice's space is not readable for bob (issue 20 scopes the
    # credentials per user; the contract is ROMAN_USER_STORE_URL).
    bob_url, bob_token = _spawn(hub, "bob", login, hub_api)
    with hub_api.kernel(bob_url, bob_token, timeout=420) as kernel:
        bob = _report(kernel.execute(START_CLUSTER), "CLUSTER")
        other = _report(
            kernel.execute(READ_OTHERS.replace("{url!r}", repr(alice_results))), "OTHER"
        )
        kernel.execute(SHUTDOWN)
    assert "ROMAN_USER_STORE_URL" in server_env, (
        "the spawner gives every server its own writable prefix"
    )
    assert bob["server_env"]["ROMAN_USER_STORE_URL"] != server_env["ROMAN_USER_STORE_URL"]
    assert "refused" in other, f"bob's worker read alice's results: {other}"


def gateway_was_used(kernel) -> bool:
    out = kernel.execute(
        "from platform_lib.compute import gateway_configured\nprint('GW', gateway_configured())"
    )
    return out.split()[1] == "True"
