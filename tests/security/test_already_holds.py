"""What held in the outside probe of issue 20, repeated so it does not regress: forged spawns and
options, token misuse, CSRF, traversal and OIDC code replay, against the running platform."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import pytest
import requests


def test_forged_spawn_options_are_refused(quota_platform):
    qp = quota_platform
    for options, words in (
        ({"profile": "xlarge"}, "not available"),
        ({"profile": "small", "image": "evil/miner:latest"}, "Image"),
        ({"profile": "small", "cpu_limit": "64"}, "Unknown server option"),
    ):
        r = qp.hub("erin", "POST", "users/erin/server", json=options)
        assert r.status_code == 403 and words in r.json()["message"], (options, r.text)
    assert not qp.hub("admin", "GET", "users/erin").json().get("servers")


def test_forged_gateway_options_are_refused(quota_platform):
    qp = quota_platform
    url = qp.settings["gateway"]["address"] + "/api/v1/clusters/"
    auth = {"Authorization": f"jupyterhub {qp.token('erin')}"}
    for options in ({"tier": "consortium"}, {"worker_cores": 10_000}, {"worker_memory": 1e6}):
        r = requests.post(url, json={"cluster_options": options}, headers=auth, timeout=60)
        assert r.status_code == 422, (options, r.status_code, r.text)


def test_token_misuse_is_refused(quota_platform):
    qp = quota_platform
    bob = {"Authorization": f"token {qp.token('bob')}"}
    # bob's token on alice's things, and a made-up token anywhere
    assert requests.get(f"{qp.url}/hub/api/users/alice", headers=bob, timeout=30).status_code in (
        403,
        404,
    )
    assert requests.post(
        f"{qp.url}/hub/api/users/alice/tokens", json={}, headers=bob, timeout=30
    ).status_code in (403, 404)
    assert requests.delete(
        f"{qp.url}/hub/api/users/alice/server", headers=bob, timeout=30
    ).status_code in (403, 404)
    assert requests.get(
        f"{qp.url}/user/alice/api/contents", headers=bob, timeout=30, allow_redirects=False
    ).status_code in (302, 403, 404, 503)
    fake = {"Authorization": "token " + secrets.token_hex(16)}
    assert requests.get(f"{qp.url}/hub/api/user", headers=fake, timeout=30).status_code == 403
    assert requests.get(qp.quota + "api/me", headers=fake, timeout=30).status_code == 403
    r = requests.get(
        qp.settings["gateway"]["address"] + "/api/v1/clusters/",
        timeout=30,
        headers={"Authorization": f"jupyterhub {secrets.token_hex(16)}"},
    )
    assert r.status_code == 401


def test_cross_site_posts_are_refused(quota_platform):
    qp = quota_platform
    s = qp.login("bob")
    r = s.post(
        f"{qp.url}/hub/api/users/bob/tokens",
        json={"note": "csrf"},
        timeout=30,
        headers={"Referer": "https://evil.example/"},
    )
    assert r.status_code == 403
    s.get(qp.quota, timeout=30)
    r = s.post(
        qp.quota + "forms/request",
        data={"kind": "tier", "tier": "research", "justification": "csrf"},
        timeout=30,
        allow_redirects=False,
    )
    assert r.status_code == 403


# (a literal "a/../b" is resolved by the HTTP client itself before sending, so it is encoded)
@pytest.mark.parametrize("name", ["..", "..%2Fadmin", "alice%2F..%2Fadmin", "%00admin", "a" * 300])
def test_traversal_in_names_is_refused(quota_platform, name):
    qp = quota_platform
    r = qp.api("admin", "PUT", f"api/tiers/{name}", json={"tier": "research"})
    assert r.status_code in (400, 404), (name, r.status_code)
    r = qp.api("admin", "POST", "api/teams/nosuch/members", json={"username": name})
    assert r.status_code in (400, 404)


def test_oidc_code_cannot_be_replayed(quota_platform):
    """A code is good once: the second exchange (an attacker replaying a leaked code) fails."""
    qp = quota_platform
    oidc = qp.settings["oidc"]
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    s = requests.Session()
    query = {
        "client_id": oidc["client_id"],
        "redirect_uri": oidc["callback_url"],
        "response_type": "code",
        "scope": "openid",
        "state": "x",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    page = s.get(f"{oidc['issuer']}/authorize?{urlencode(query)}", timeout=30)
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page.text).group(1))
    request = html.unescape(re.search(r'name="request" value="([^"]*)"', page.text).group(1))
    r = s.post(
        urljoin(page.url, action),
        data={"request": request, "username": "gina", "password": qp.helpers.DEMO_PASSWORD},
        timeout=30,
        allow_redirects=False,
    )
    assert r.status_code == 302, r.status_code
    code = parse_qs(urlparse(r.headers["Location"]).query)["code"][0]
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": oidc["callback_url"],
        "client_id": oidc["client_id"],
        "client_secret": oidc["client_secret"],
        "code_verifier": verifier,
    }
    first = requests.post(f"{oidc['issuer']}/token", data=body, timeout=30)
    assert first.status_code == 200 and "id_token" in first.json(), first.text
    again = requests.post(f"{oidc['issuer']}/token", data=body, timeout=30)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant", again.text
