"""Attacks on the quota service (issue 20, items 1 and 2) and what already held there."""

from __future__ import annotations

import concurrent.futures as cf
import time

import requests


def _service_session(qp, username: str) -> requests.Session:
    """A browser-like session with the quota service's own login cookie (OAuth via the hub)."""
    s = qp.login(username)
    r = s.get(qp.quota, timeout=30)
    assert r.status_code == 200 and r.url.startswith(qp.quota), (r.status_code, r.url)
    return s


def test_cookie_post_with_a_bogus_token_header_does_not_hang_the_service(quota_platform):
    """Attack 2: a cookie-authenticated POST carrying ``Authorization: token <bogus>`` used to
    dead-lock the service's one HubAuth thread and with it every other request."""
    qp = quota_platform
    s = _service_session(qp, "alice")
    with cf.ThreadPoolExecutor(4) as pool:
        attacks = [pool.submit(s.post, qp.quota + "api/requests", timeout=15,
                               json={"kind": "tier", "tier": "research", "justification": "x"},
                               headers={"Authorization": "token not-a-real-token"})
                   for _ in range(3)]
        for f in attacks:
            r = f.result()  # a timeout here is the hang
            assert r.status_code == 403, (r.status_code, r.text)
    t0 = time.monotonic()
    r = qp.api("bob", "GET", "api/me")
    assert r.status_code == 200 and r.json()["name"] == "bob", r.text
    assert time.monotonic() - t0 < 10
    # The cookie alone, with the page's _xsrf token, still works afterwards.
    xsrf = s.cookies.get("_xsrf", path="/services/quota/") or s.cookies.get("_xsrf")
    r = s.get(qp.quota + "api/me", timeout=15)
    assert r.status_code == 200, r.text
    assert xsrf
