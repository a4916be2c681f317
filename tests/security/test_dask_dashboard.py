"""Attack 7: a Dask dashboard reached through the gateway's proxy without a credential.

A real cluster of alice's starts through the real gateway; its dashboard must refuse anyone
without her credential (401), refuse bob's valid token (403), and let alice in with hers.
"""

from __future__ import annotations

import pytest
import requests


@pytest.fixture(scope="module")
def alice_cluster(quota_platform, user_gateway):
    qp = quota_platform
    gw = user_gateway(qp, "alice")
    cluster = gw.new_cluster()
    try:
        yield qp, cluster
    finally:
        cluster.shutdown()
        gw.close()


def test_dashboard_without_credential_is_refused(alice_cluster):
    qp, cluster = alice_cluster
    link = cluster.dashboard_link
    assert "/clusters/" in link
    for path in ("status", "info/main/workers.html", "individual-plots.json", "sitemap.json"):
        r = requests.get(link.rsplit("/", 1)[0] + "/" + path, timeout=30, allow_redirects=False)
        assert r.status_code == 401, (path, r.status_code, r.text[:200])
        assert "Dask" not in r.text or "needs your hub token" in r.text


def test_dashboard_with_another_users_token_is_refused(alice_cluster):
    qp, cluster = alice_cluster
    bob = qp.token("bob")
    r = requests.get(
        cluster.dashboard_link,
        timeout=30,
        allow_redirects=False,
        headers={"Authorization": f"token {bob}"},
    )
    assert r.status_code == 403, (r.status_code, r.text[:200])
    r = requests.get(cluster.dashboard_link + f"?token={bob}", timeout=30, allow_redirects=False)
    assert r.status_code == 403 and "roman-dask-dashboard" not in r.headers.get("Set-Cookie", "")
    name = f"roman-dask-dashboard-{cluster.name}"
    # A forged session cookie is no session either.
    r = requests.get(
        cluster.dashboard_link,
        timeout=30,
        allow_redirects=False,
        cookies={name: "9999999999." + "0" * 64},
    )
    assert r.status_code == 401


def test_owner_opens_the_dashboard_with_her_token(alice_cluster):
    from platform_lib.dashboard_auth import dashboard_link

    qp, cluster = alice_cluster
    s = requests.Session()
    r = s.get(dashboard_link(cluster, qp.token("alice")), timeout=60)
    assert r.status_code == 200, (
        r.status_code,
        r.url,
        [
            (h.status_code, h.headers.get("Location"), h.headers.get("Set-Cookie"))
            for h in r.history
        ],
        cluster.dashboard_link,
    )
    assert "token=" not in r.url  # the token left the address bar
    assert "bokeh" in r.text.lower() or "dask" in r.text.lower()
    r = s.get(cluster.dashboard_link.rsplit("/", 1)[0] + "/info/main/workers.html", timeout=60)
    assert r.status_code == 200
