"""TAP/ObsCore on a real cluster: pyvo through the hub, as a user and from inside a server.

Marker ``cluster``: run after scripts/kind-up.sh (the kind values enable ``data.tap`` over the
sample survey). Skipped, with the reason, where no cluster or release is reachable or the release
runs without TAP.
"""

from __future__ import annotations

import pytest
import requests

pytestmark = pytest.mark.cluster

COUNT = "SELECT COUNT(*) AS n FROM ivoa.obscore"


@pytest.fixture(scope="module")
def tap_release(platform, chart_cluster):
    if not platform.values["data"].get("tap", {}).get("enabled"):
        pytest.skip("the release runs without TAP (data.tap.enabled is false)")
    for name in ("tap-proxy", "tap-dachs", "tap-publisher"):
        chart_cluster.wait_until(
            f"deployment {name}",
            lambda n=name: (
                chart_cluster.kget("deployment", f"{chart_cluster.RELEASE}-{n}")["status"].get(
                    "readyReplicas", 0
                )
                >= 1
            ),
            600,
        )
    return platform


def _token(chart_cluster, platform, username: str) -> str:
    s = chart_cluster.login(platform, username)
    r = s.post(
        f"{platform.hub_url}/hub/api/users/{username}/tokens",
        json={"note": "tests/cluster/test_tap.py", "expires_in": 3600},
        timeout=30,
    )
    assert r.status_code in (200, 201), r.text[:300]
    return r.json()["token"]


def test_obscore_through_the_hub_with_pyvo(tap_release, chart_cluster):
    import pyvo

    platform = tap_release
    url = f"{platform.hub_url}/services/tap"
    session = requests.Session()
    session.headers["Authorization"] = f"token {_token(chart_cluster, platform, 'research')}"
    tap = pyvo.dal.TAPService(url, session=session)

    def published():
        return int(tap.run_sync(COUNT).to_table()["n"][0]) or None

    # the publisher publishes the sample survey once the sample Job has indexed it
    n = chart_cluster.wait_until("the sample survey in ivoa.obscore", published, 900, every=10)
    rows = tap.search(
        "SELECT TOP 5 obs_publisher_did, access_url, s_region, calib_level FROM ivoa.obscore"
    ).to_table()
    assert 0 < len(rows) <= min(5, n)
    assert all(str(u).startswith(("/data/roman", "file://")) for u in rows["access_url"])
    # capabilities name the public endpoint, not DaCHS's in-cluster address
    caps = session.get(f"{url}/capabilities", timeout=60).text
    assert f"{url}/sync" in caps and "tap-dachs" not in caps
    # a token the hub does not know is refused, never answered with public rows
    bad = requests.post(
        f"{url}/sync",
        data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": COUNT},
        headers={"Authorization": "token not-a-hub-token"},
        timeout=60,
    )
    assert bad.status_code == 401, bad.text[:300]


def test_a_notebook_queries_tap_with_no_set_up(tap_release, chart_cluster):
    """Inside a user's server: ROMAN_TAP_URL and the server's own token, through the proxy."""
    platform = tap_release
    username = "research"
    s, api = chart_cluster.start_server(platform, username)
    try:
        script = (
            "import os\n"
            "from platform_lib.data.tap_client import tap_service\n"
            f"t = tap_service().run_sync({COUNT!r}).to_table()\n"
            "print('URL', os.environ['ROMAN_TAP_URL'])\n"
            "print('ROWS', int(t['n'][0]))\n"
        )
        out = chart_cluster.kubectl(
            "exec",
            "-n",
            platform.user_namespace,
            f"jupyter-{username}",
            "-c",
            "notebook",
            "--",
            "python",
            "-c",
            script,
            timeout=600,
        ).stdout
        assert "/services/tap" in out and "proxy-public" in out, out[-1000:]
        rows = int(out.split("ROWS", 1)[1].split()[0])
        assert rows > 0, out[-1000:]
    finally:
        s.delete(f"{api}/server", timeout=60)
