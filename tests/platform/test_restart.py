"""Stopping and starting the platform keeps users, server records, tokens, sessions and files."""

from __future__ import annotations

import stat

import pytest
import requests


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow
def test_state_survives_restart_and_stop_leaves_no_process(start_platform, login, hub_api):
    first = start_platform()
    hub = first.url
    session = requests.Session()
    login(session, hub, "bob")
    token = hub_api.token(session, hub, "bob")
    headers = {"Authorization": f"token {token}"}
    r = requests.post(f"{hub}/hub/api/users/bob/server", headers=headers, timeout=60)
    assert r.status_code in (201, 202), r.text
    hub_api.wait_for_server(hub, "bob", token, ready=True)
    first.track()
    state = first.state_dir
    (state / "users" / "bob" / "notes.txt").write_text("kept across restarts\n")
    cookie_secret = (state / "secrets" / "jupyterhub_cookie_secret").read_text()

    # Ctrl-C with bob's server still running: the hub stops it, nothing is left behind.
    assert first.stop() == 0
    assert not first.leftovers(), first.leftovers()

    second = start_platform()
    hub2 = second.url
    # The state folder and its secrets stayed private and unchanged.
    assert _mode(state) == 0o700
    assert _mode(state / "secrets") == 0o700
    assert _mode(state / "settings.json") == 0o600
    assert all(_mode(p) == 0o600 for p in (state / "secrets").iterdir())
    assert (state / "secrets" / "jupyterhub_cookie_secret").read_text() == cookie_secret
    # The user, their server record (stopped) and their token persist in the hub database.
    r = requests.get(
        f"{hub2}/hub/api/users/bob",
        params={"include_stopped_servers": "1"},
        headers=headers,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    servers = r.json()["servers"]
    assert "" in servers and not servers[""]["ready"] and servers[""]["started"] is None
    # The browser session from before the restart is still valid (same cookie secret, same DB).
    r = session.get(f"{hub2}/hub/home", timeout=30, allow_redirects=False)
    assert r.status_code == 200, f"session lost across restart: {r.status_code} {r.headers}"
    assert (state / "users" / "bob" / "notes.txt").read_text() == "kept across restarts\n"

    assert second.stop() == 0
    assert not second.leftovers(), second.leftovers()
