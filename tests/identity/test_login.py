"""The OIDC login over HTTP against the real development provider, and each refusal."""

from __future__ import annotations

import base64
import json

import requests

from hub_config.policy import POLICY_ENV
from tests.support import identity as cf


def test_login_flow_sets_hub_cookie_and_tier_groups(stack):
    s = cf.login(stack, "research")
    r = s.get(f"{stack.hub_url}/hub/home", timeout=30)
    assert r.status_code == 200 and "research" in r.text
    info = stack.api("GET", "/users/research").json()
    assert info["groups"] == ["tier-research"]
    assert not info["admin"]


def _no_login_cookie(s: requests.Session) -> bool:
    return not any(c.name == "jupyterhub-hub-login" for c in s.cookies)


def test_bad_state_is_refused(stack):
    s = requests.Session()
    authorize = cf.start_login(stack, s)
    callback = cf.provider_code_redirect(stack, s, authorize, "entry")
    forged = callback.replace("state=", "state=eyJzdGF0ZV9pZCI6ICJmb3JnZWQifQ%3D%3D&was=")
    r = s.get(forged, allow_redirects=False, timeout=30)
    assert r.status_code == 400 and "state" in r.text.lower()
    assert _no_login_cookie(s)
    # And a callback without the state cookie (another browser) is refused too.
    r = requests.get(callback, allow_redirects=False, timeout=30)
    assert r.status_code == 400


def test_code_replayed_into_another_login_fails_pkce(stack):
    """A code bound to flow A's challenge, replayed into flow B, is refused (B's verifier)."""
    a, b = requests.Session(), requests.Session()
    callback_a = cf.provider_code_redirect(stack, a, cf.start_login(stack, a), "research")
    callback_b = cf.provider_code_redirect(stack, b, cf.start_login(stack, b), "research")
    from urllib.parse import parse_qs, urlencode, urlparse

    code_a = parse_qs(urlparse(callback_a).query)["code"][0]
    state_b = parse_qs(urlparse(callback_b).query)["state"][0]
    r = b.get(
        f"{stack.hub_url}/hub/oauth_callback?" + urlencode({"code": code_a, "state": state_b}),
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code >= 400
    assert _no_login_cookie(b)


def _pkce_pair() -> tuple[str, str]:
    import secrets

    from hub_config.oidc_dev.provider import s256

    v = secrets.token_urlsafe(48)
    return v, s256(v)


def _provider_code(stack, challenge: str, method: str = "S256") -> str:
    """Act as the hub (registered client) at the provider directly; returns a fresh code."""
    from urllib.parse import parse_qs, urlencode, urlparse

    s = requests.Session()
    params = {
        "response_type": "code",
        "client_id": cf.CLIENT_ID,
        "scope": "openid groups",
        "redirect_uri": f"{stack.hub_url}/hub/oauth_callback",
        "state": "xyz",
        "code_challenge": challenge,
        "code_challenge_method": method,
    }
    authorize = f"{stack.issuer}/authorize?{urlencode(params)}"
    if method != "S256":
        r = s.get(authorize, allow_redirects=False, timeout=30)
        assert r.status_code == 302 and "error=invalid_request" in r.headers["Location"]
        return ""
    action, request = cf.provider_login_form(s, authorize)
    r = s.post(
        action,
        data={"request": request, "username": "entry", "password": "entry-demo"},
        allow_redirects=False,
        timeout=30,
    )
    return parse_qs(urlparse(r.headers["Location"]).query)["code"][0]


def _token(stack, **data) -> requests.Response:
    base = {
        "grant_type": "authorization_code",
        "redirect_uri": f"{stack.hub_url}/hub/oauth_callback",
    }
    return requests.post(
        f"{stack.issuer}/token",
        data={**base, **data},
        auth=(cf.CLIENT_ID, stack.client_secret),
        timeout=30,
    )


def test_provider_verifies_pkce_client_and_redirect(stack):
    verifier, challenge = _pkce_pair()
    other, _ = _pkce_pair()
    # Wrong verifier, missing verifier: refused (and the code is spent either way).
    r = _token(stack, code=_provider_code(stack, challenge), code_verifier=other)
    assert r.status_code == 400 and "code_verifier" in r.json()["error_description"]
    r = _token(stack, code=_provider_code(stack, challenge))
    assert r.status_code == 400 and "missing" in r.json()["error_description"]
    # Only S256 is accepted.
    _provider_code(stack, verifier, method="plain")
    # Wrong client secret, wrong redirect URI.
    code = _provider_code(stack, challenge)
    r = requests.post(
        f"{stack.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": f"{stack.hub_url}/hub/oauth_callback",
            "code_verifier": verifier,
        },
        auth=(cf.CLIENT_ID, "not-the-secret"),
        timeout=30,
    )
    assert r.status_code == 401
    r = _token(
        stack,
        code=_provider_code(stack, challenge),
        code_verifier=verifier,
        redirect_uri="http://127.0.0.1:1/elsewhere",
    )
    assert r.status_code == 400
    # The right verifier works once; the code cannot be replayed.
    code = _provider_code(stack, challenge)
    r = _token(stack, code=code, code_verifier=verifier)
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert {"access_token", "id_token", "refresh_token"} <= set(tokens)
    assert _token(stack, code=code, code_verifier=verifier).status_code == 400
    # Refresh tokens rotate: the new one works, the old one is spent.
    r = requests.post(
        f"{stack.issuer}/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(cf.CLIENT_ID, stack.client_secret),
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["refresh_token"] != tokens["refresh_token"]
    r = requests.post(
        f"{stack.issuer}/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(cf.CLIENT_ID, stack.client_secret),
        timeout=30,
    )
    assert r.status_code == 400


def _authenticator(stack):
    from hub_config.auth import RomanOIDCAuthenticator

    return RomanOIDCAuthenticator(
        oidc_issuer=stack.issuer,
        client_id=cf.CLIENT_ID,
        client_secret=stack.client_secret,
    )


def _signing_key(stack):
    from joserfc.jwk import RSAKey

    return RSAKey.import_key(
        json.loads((stack.state_dir / "oidc" / "oidc-signing-key.json").read_text())
    )


def _sign(key, claims: dict, kid: str | None = None, alg: str = "RS256") -> str:
    from joserfc import jwt

    return jwt.encode({"alg": alg, "kid": kid or key.kid}, claims, key)


def test_id_token_checks(stack, monkeypatch):
    import time

    import pytest
    from joserfc.jwk import RSAKey
    from tornado import web

    from hub_config.auth import IdTokenError

    verifier, challenge = _pkce_pair()
    genuine = _token(stack, code=_provider_code(stack, challenge), code_verifier=verifier).json()
    monkeypatch.setenv(POLICY_ENV, str(stack.policy_file))  # the hub's policy, as the hub reads it
    auth = _authenticator(stack)
    key = _signing_key(stack)
    now = int(time.time())
    good = {
        "iss": stack.issuer,
        "aud": cf.CLIENT_ID,
        "sub": "myst-dev|entry",
        "iat": now,
        "exp": now + 300,
        "preferred_username": "entry",
    }

    async def run():
        claims = await auth.verify_id_token(genuine["id_token"])
        assert claims["preferred_username"] == "entry" and claims["aud"] == cf.CLIENT_ID
        assert (await auth.verify_id_token(_sign(key, good)))["sub"] == "myst-dev|entry"
        bad = {
            "wrong audience": _sign(key, {**good, "aud": "some-other-client"}),
            "expired": _sign(key, {**good, "iat": now - 7200, "exp": now - 3600}),
            "wrong issuer": _sign(key, {**good, "iss": "http://127.0.0.1:9/"}),
            "foreign key": _sign(RSAKey.generate_key(2048, private=True), good, kid=key.kid),
        }
        head, payload, sig = genuine["id_token"].split(".")
        claims_t = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims_t["preferred_username"] = "platformadmin"
        forged = base64.urlsafe_b64encode(json.dumps(claims_t).encode()).decode().rstrip("=")
        bad["tampered"] = f"{head}.{forged}.{sig}"
        none_head = base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=")
        bad["alg none"] = f"{none_head}.{payload}."
        for reason, token in bad.items():
            with pytest.raises(IdTokenError):
                await auth.verify_id_token(token)
            # The authenticator turns each into a 403 at login.
            with pytest.raises(web.HTTPError) as exc:
                await auth.token_to_user({**genuine, "id_token": token})
            assert exc.value.status_code == 403, reason
        user = await auth.token_to_user(genuine)
        assert user["preferred_username"] == "entry" and "aud" not in user

    cf.run_async(run())


def test_roles_teams_and_admins(stack):
    cf.login(stack, "teamadmin")
    cf.login(stack, "teammember")
    cf.login(stack, "platformadmin")
    cf.login(stack, "consortium")
    cf.login(stack, "entry")
    users = {u["name"]: u for u in stack.api("GET", "/users").json()}
    assert set(users["teamadmin"]["groups"]) == {
        "tier-team",
        "team-galaxies",
        "team-galaxies-admins",
    }
    assert set(users["teammember"]["groups"]) == {"tier-team", "team-galaxies"}
    assert users["consortium"]["groups"] == ["tier-consortium"]  # from the broker's tier claim
    assert users["entry"]["groups"] == ["tier-entry"]  # the default
    assert users["platformadmin"]["admin"] and not users["teamadmin"]["admin"]
    # The team admin sees their team's members, and nobody else.
    tok = stack.user_token("teamadmin")
    member = stack.api("GET", "/users/teammember", token=tok).json()
    assert "tier-team" in member["groups"] and "servers" in member
    # Outside the team: at most the bare name JupyterHub shows every user, never details.
    other = stack.api("GET", "/users/research", token=tok)
    assert other.status_code in (403, 404) or set(other.json()) <= {"name", "kind"}
    # The team admin may stop a member's server, not anyone else's.
    assert stack.api("DELETE", "/users/research/server", token=tok).status_code in (403, 404)
    assert stack.api("DELETE", "/users/teammember/server", token=tok).status_code in (202, 204, 400)
    # A member has no such power over the admin.
    tok = stack.user_token("teammember")
    admin = stack.api("GET", "/users/teamadmin", token=tok)
    assert admin.status_code in (403, 404) or "groups" not in admin.json()
    assert stack.api("DELETE", "/users/teamadmin/server", token=tok).status_code in (403, 404)


def test_logout_ends_provider_session(stack):
    from urllib.parse import parse_qs, urlparse

    s = cf.login(stack, "entry")
    # The hub's logout page redirects to the provider's end-session endpoint with the ID token.
    xsrf = s.cookies.get("_xsrf", path="/hub/") or ""
    r = s.get(f"{stack.hub_url}/hub/logout", allow_redirects=False, timeout=30)
    if r.status_code == 200:  # JupyterHub may ask for a POST (xsrf) logout
        r = s.post(
            f"{stack.hub_url}/hub/logout", data={"_xsrf": xsrf}, allow_redirects=False, timeout=30
        )
    assert r.status_code == 302, r.text[:300]
    loc = r.headers["Location"]
    assert loc.startswith(f"{stack.issuer}/logout?")
    assert "id_token_hint" in parse_qs(urlparse(loc).query)
    r = s.get(loc, allow_redirects=False, timeout=30)
    assert r.status_code == 302 and r.headers["Location"].startswith(f"{stack.hub_url}/hub/login")
    # The provider asks for the password again (its session is gone) ...
    authorize = cf.start_login(stack, s)
    r = s.get(authorize, allow_redirects=False, timeout=30)
    assert r.status_code == 200 and 'name="password"' in r.text
    # ... whereas a live provider session would have issued a code straight away.
    s2 = cf.login(stack, "entry")
    r = s2.get(cf.start_login(stack, s2), allow_redirects=False, timeout=30)
    assert r.status_code == 302 and "code=" in r.headers["Location"]


def test_provider_down_is_a_clear_503_and_login_works_again(stack):
    """The identity provider not answering (here frozen with SIGSTOP; killed, it is restarted by
    `up` in ~2 s, which a login waits for): the hub says so on a 503 page instead of sending the
    browser to a dead address, and logins work again once it answers."""
    import signal
    import time

    provider = next(p for p in stack.procs if any("oidc_dev" in str(a) for a in p.args))
    provider.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = requests.get(f"{stack.hub_url}/hub/oauth_login", allow_redirects=False, timeout=60)
        waited = time.monotonic() - t0
    finally:
        provider.send_signal(signal.SIGCONT)
    assert r.status_code == 503, (r.status_code, r.headers.get("Location"))
    assert "sign-in service is not answering" in r.text, r.text[r.text.find("<body") :][:3000]
    assert "already running are not affected" in r.text
    assert waited < 20, waited  # bounded: provider_wait (6 s) plus one probe's timeout
    cf.login(stack, "research")  # and back to normal
