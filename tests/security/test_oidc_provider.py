"""Attack 9 (item 3 of issue 20's plan): the development OIDC provider's sign-in form.

Against the platform's running provider: password guessing is cut off, a sign-in form posted
from another session (login CSRF) is refused, and the page shows no demo password.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin

import requests


def _form(qp, s: requests.Session) -> tuple[str, str, requests.Response]:
    r = s.get(f"{qp.url}/hub/oauth_login?next=/hub/token", timeout=30)
    assert r.status_code == 200 and 'name="password"' in r.text, r.url
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', r.text).group(1))
    request = html.unescape(re.search(r'name="request" value="([^"]*)"', r.text).group(1))
    return urljoin(r.url, action), request, r


def test_the_sign_in_page_shows_no_password(quota_platform):
    qp = quota_platform
    _, _, page = _form(qp, requests.Session())
    for secret in (qp.helpers.DEMO_PASSWORD, "teamadmin-demo", "research-demo", "entry-demo"):
        assert secret not in page.text
    assert "terminal" in page.text
    assert page.headers.get("X-Frame-Options") == "DENY"


def test_login_csrf_a_form_from_another_session_is_refused(quota_platform):
    """The attacker fetches a form in his own browser and makes the victim's browser post it
    with his credentials; the victim's browser lacks the form's cookie, so no sign-in."""
    qp = quota_platform
    action, request, _ = _form(qp, requests.Session())  # the attacker's form
    victim = requests.Session()
    victim.get(f"{qp.url}/hub/oauth_login?next=/hub/token", timeout=30)  # victim has her own
    r = victim.post(
        action,
        data={"request": request, "username": "hank", "password": qp.helpers.DEMO_PASSWORD},
        timeout=30,
        allow_redirects=False,
    )
    assert r.status_code == 403 and "code=" not in r.headers.get("Location", ""), r.status_code
    assert "oidc_dev_session" not in victim.cookies
    # Also refused: the form without its nonce, from a session with no form at all.
    stripped = re.sub(r"&?_login_csrf=[^&]*", "", request)
    r = requests.post(
        action,
        data={"request": stripped, "username": "hank", "password": qp.helpers.DEMO_PASSWORD},
        timeout=30,
        allow_redirects=False,
    )
    assert r.status_code == 403
    # The honest flow still signs in.
    s = requests.Session()
    action, request, _ = _form(qp, s)
    r = s.post(
        action,
        data={"request": request, "username": "hank", "password": qp.helpers.DEMO_PASSWORD},
        timeout=60,
    )
    assert r.status_code == 200 and r.url.startswith(f"{qp.url}/hub/token"), r.url


def test_password_guessing_is_cut_off(quota_platform):
    qp = quota_platform
    s = requests.Session()
    codes = []
    for i in range(7):
        action, request, _ = _form(qp, s)
        r = s.post(
            action,
            data={"request": request, "username": "research", "password": f"guess-{i}"},
            timeout=30,
            allow_redirects=False,
        )
        codes.append(r.status_code)
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429], codes
    assert int(r.headers["Retry-After"]) > 0
    # while locked, even the right password is refused; other accounts are unaffected
    action, request, _ = _form(qp, s)
    r = s.post(
        action,
        data={"request": request, "username": "research", "password": "research-demo"},
        timeout=30,
        allow_redirects=False,
    )
    assert r.status_code == 429
    qp.login("gina")
