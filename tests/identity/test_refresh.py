"""Refresh and restarts: the authenticator renews tokens with the refresh token, and the provider
keeps sessions and tokens across its own restart (so a platform restart logs nobody out)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from urllib.parse import parse_qs, urlencode, urlparse

import requests

from hub_config.oidc_dev.provider import s256
from tests.support import identity as cf

REDIRECT = "http://127.0.0.1:9/hub/oauth_callback"


def _start(port: int, state, secret_file) -> subprocess.Popen:
    log = (state / "provider.log").open("a")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hub_config.oidc_dev",
            "--port",
            str(port),
            "--client-id",
            "hub",
            "--client-secret-file",
            str(secret_file),
            "--redirect-uri",
            REDIRECT,
            "--state-dir",
            str(state),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    cf._wait_http(
        f"http://127.0.0.1:{port}/.well-known/openid-configuration",
        proc,
        state / "provider.log",
        60,
    )
    return proc


def _tokens(issuer: str, secret: str) -> dict:
    verifier = secrets.token_urlsafe(48)
    s = requests.Session()
    params = {
        "response_type": "code",
        "client_id": "hub",
        "scope": "openid groups",
        "redirect_uri": REDIRECT,
        "state": "s",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    action, request = cf.provider_login_form(s, f"{issuer}/authorize?{urlencode(params)}")
    r = s.post(
        action,
        data={"request": request, "username": "research", "password": "research-demo"},
        allow_redirects=False,
        timeout=30,
    )
    code = parse_qs(urlparse(r.headers["Location"]).query)["code"][0]
    r = requests.post(
        f"{issuer}/token",
        auth=("hub", secret),
        timeout=30,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    r.raise_for_status()
    return r.json()


class _User:
    def __init__(self, name: str, auth_state: dict):
        self.name, self._state = name, auth_state

    async def get_auth_state(self) -> dict:
        return self._state


def test_refresh_user_and_provider_restart(tmp_path):
    port = cf._free_port()
    issuer = f"http://127.0.0.1:{port}"
    secret = secrets.token_hex(16)
    secret_file = tmp_path / "secret"
    secret_file.write_text(secret)
    proc = _start(port, tmp_path, secret_file)
    try:
        tokens = _tokens(issuer, secret)
        # Restart the provider (SIGTERM, as the supervisor stops it): tokens survive.
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
        assert (tmp_path / "oidc-sessions.json").stat().st_mode & 0o077 == 0
        proc = _start(port, tmp_path, secret_file)
        r = requests.get(
            f"{issuer}/userinfo",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["preferred_username"] == "research"

        from hub_config.auth import RomanOIDCAuthenticator

        auth = RomanOIDCAuthenticator(oidc_issuer=issuer, client_id="hub", client_secret=secret)
        # A stale access token: refresh_user falls back to the refresh token and gets new ones.
        stale = {**tokens, "access_token": "revoked-or-expired"}
        state = {"token_response": stale, "refresh_token": tokens["refresh_token"]}
        model = cf.run_async(auth.refresh_user(_User("research", state)))
        assert model and model["name"] == "research"
        assert model["auth_state"]["roman"]["tier"] == "research"
        new = model["auth_state"]["token_response"]
        assert new["access_token"] != tokens["access_token"]
        assert new["refresh_token"] != tokens["refresh_token"]  # rotated
        # The spent refresh token cannot renew again: the user must log in.
        assert cf.run_async(auth.refresh_user(_User("research", state))) is False
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
