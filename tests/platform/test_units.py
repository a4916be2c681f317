"""Pieces of the local platform that need no running hub: state folder, spawner, demo login."""

from __future__ import annotations

import asyncio
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from hub_config.local.devauth import DemoAuthenticator
from hub_config.local.state import StateDir
from hub_config.naming import user_folder_name


def test_state_folder_is_private_and_secrets_are_stable(tmp_path):
    root = tmp_path / "state"
    root.mkdir(mode=0o755)
    state = StateDir(root)
    state.create()
    assert stat.S_IMODE(root.stat().st_mode) == 0o700  # an existing folder is tightened
    first = state.secret("proxy_auth_token")
    assert stat.S_IMODE((state.secrets_dir / "proxy_auth_token").stat().st_mode) == 0o600
    assert StateDir(root).secret("proxy_auth_token") == first
    assert state.secret("other") != first
    assert len(state.gateway_encrypt_key()) == 44  # base64 of 32 bytes, as dask-gateway needs


@pytest.mark.parametrize("name", ["../etc", "..", ".hidden", "a/b", "alice"])
def test_user_folder_name_is_one_safe_component(name):
    folder = user_folder_name(name)
    assert "/" not in folder and not folder.startswith(".") and folder


def _auth(bind_url: str = "http://127.0.0.1:8000", password: str = "correct-horse"):
    return DemoAuthenticator(
        public_url=bind_url,
        demo_password=password,
        allowed_users={"alice"},
        admin_users={"admin"},
    )


def _run(coro):
    # In a thread of its own: another test's Playwright may own this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=30)


def test_demo_authenticator_checks_password_and_user():
    auth = _auth()
    login = lambda u, p: _run(auth.authenticate(None, {"username": u, "password": p}))  # noqa: E731
    assert login("alice", "correct-horse") == "alice"
    assert login("admin", "correct-horse") == "admin"
    assert login("alice", "wrong") is None
    assert login("mallory", "correct-horse") is None


def test_demo_authenticator_refuses_short_password():
    with pytest.raises(ValueError, match="at least 8"):
        _auth(password="short")


@pytest.mark.parametrize("url", ["http://0.0.0.0:8000", "https://roman.example.org"])
def test_demo_authenticator_refuses_a_non_loopback_deployment(url):
    with pytest.raises(ValueError, match="local platform only"):
        _auth(bind_url=url)


def test_demo_authenticator_accepts_loopback_names():
    assert _auth(bind_url="http://localhost:8000")
    assert _auth(bind_url="http://[::1]:8000")
