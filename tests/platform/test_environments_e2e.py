"""Issue 18, done when: a user picks the previous environment and gets a server and Dask workers
with its versions. On the real local platform (``roman-platform up``): alice starts her server
in 2026.2 (romancal 1.0.3, roman_datamodels 1.0.0), a kernel there and the workers of the
cluster platform_lib.compute starts from it report that environment and those versions; back
in 2026.3, the same user gets the current pipeline again.

The previous environment runs locally from its overlay (``python -m hub_config.environments
make-local 2026.2``, which needs the package index; tests only talk to 127.0.0.1, so the test
needs the overlay, which ``make setup`` makes with ``make-local --missing``: without it the
test fails and names the command)."""

from __future__ import annotations

import json

import pytest
import requests

from hub_config.policy import load_policy
from tests.support.environments import previous_overlay

CODE = """
import json, os, sys
from platform_lib.environment import current
from platform_lib.compute import get_client

def report():
    from platform_lib.environment import current
    import romancal, roman_datamodels
    e = current()
    return dict(name=e.name, romancal=romancal.__version__,
                roman_datamodels=e.versions["roman_datamodels"], python=sys.executable)

here = report()
with get_client(n_workers=1) as client:
    client.wait_for_workers(1, timeout=180)
    workers = list(client.run(report).values())
print("REPORT " + json.dumps(dict(server=here, workers=workers)))
"""


def _spawn(hub, user, token, environment):
    headers = {"Authorization": f"token {token}"}
    r = requests.post(
        f"{hub}/hub/api/users/{user}/server",
        headers=headers,
        json={"profile": "small", "environment": environment},
        timeout=60,
    )
    assert r.status_code in (201, 202), r.text


@pytest.mark.slow
def test_previous_environment_server_and_workers(start_platform, login, hub_api):
    policy = load_policy()
    previous, current = previous_overlay("2026.2"), policy.environment()
    platform = start_platform()
    hub = platform.url
    session = requests.Session()
    login(session, hub, "alice")
    token = hub_api.token(session, hub, "alice")
    headers = {"Authorization": f"token {token}"}
    seen = {}
    for env in (previous, current):
        _spawn(hub, "alice", token, env.name)
        model = hub_api.wait_for_server(hub, "alice", token, ready=True, timeout=180)
        assert model["servers"][""]["user_options"]["environment"] == env.name
        server_url = f"{hub}{model['servers']['']['url']}"
        platform.track()
        out = hub_api.run_in_kernel(server_url, token, CODE, timeout=400)
        seen[env.name] = json.loads(out.split("REPORT ", 1)[1])
        r = requests.delete(f"{hub}/hub/api/users/alice/server", headers=headers, timeout=60)
        assert r.status_code in (202, 204), r.text
        hub_api.wait_for_server(hub, "alice", token, ready=False, timeout=120)
    for env in (previous, current):
        rep = seen[env.name]
        print(env.name, json.dumps(rep))
        for who in [rep["server"], *rep["workers"]]:
            assert who["name"] == env.name, rep
            assert who["romancal"] == env.versions.romancal, rep
            assert who["roman_datamodels"] == env.versions.roman_datamodels, rep
        assert len(rep["workers"]) == 1
    assert seen[previous.name]["server"]["python"] != seen[current.name]["server"]["python"]
