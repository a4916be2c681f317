"""Helpers of the real-cluster tests (tests/cluster; marker ``cluster``; not run in CI).

They use the current kubeconfig context and a release installed with the kind (or minikube)
values, e.g. by ``scripts/kind-up.sh``. Where no cluster is reachable, or the release is not
installed, every test here is skipped with the reason.
Environment: ROMAN_NAMESPACE (default roman), ROMAN_RELEASE (default rp).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
import yaml

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = os.environ.get("ROMAN_NAMESPACE", "roman")
RELEASE = os.environ.get("ROMAN_RELEASE", "rp")

#: The development provider's demo accounts (hub_config/oidc_dev/demo_users.yaml) by tier.
TIER_USERS = {
    "entry": "entry",
    "research": "research",
    "team": "teammember",
    "consortium": "consortium",
}


def kubectl(
    *args: str, timeout: float = 60, check: bool = True
) -> subprocess.CompletedProcess[str]:
    exe = shutil.which(
        "kubectl", path=f"{REPO / '.local' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    if not exe:
        pytest.skip("kubectl is not installed (scripts/install-k8s-tools.sh)")
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def kget(*args: str) -> dict[str, Any]:
    return json.loads(kubectl("get", "-n", NAMESPACE, *args, "-o", "json").stdout)


@dataclass
class Platform:
    values: dict[str, Any]
    policy: dict[str, Any]
    hub_url: str
    issuer: str
    user_namespace: str


def demo_password(username: str) -> str:
    users = yaml.safe_load((REPO / "hub_config" / "oidc_dev" / "demo_users.yaml").read_text())[
        "users"
    ]
    return next(u["password"] for u in users if u["username"] == username)


def login(platform: Platform, username: str) -> requests.Session:
    """Browser-less login: hub -> development provider's form -> callback -> hub cookie."""
    s = requests.Session()
    r = s.get(f"{platform.hub_url}/hub/oauth_login", allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text[:300]
    authorize = r.headers["Location"]
    assert authorize.startswith(f"{platform.issuer}/authorize?"), authorize
    page = s.get(authorize, timeout=30)
    assert page.status_code == 200, page.text[:300]
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page.text).group(1))
    request = html.unescape(re.search(r'name="request" value="([^"]*)"', page.text).group(1))
    r = s.post(
        urljoin(authorize, action),
        allow_redirects=False,
        timeout=30,
        data={"request": request, "username": username, "password": demo_password(username)},
    )
    assert r.status_code == 302 and "/hub/oauth_callback?" in r.headers["Location"], r.text[:300]
    r = s.get(r.headers["Location"], allow_redirects=False, timeout=60)
    assert r.status_code == 302, f"callback refused: {r.status_code} {r.text[:300]}"
    # A hub page sets the _xsrf cookie that cookie-authenticated API writes must echo.
    s.get(f"{platform.hub_url}/hub/home", timeout=30)
    xsrf = s.cookies.get("_xsrf")
    if xsrf:
        s.headers["X-XSRFToken"] = xsrf
    return s


def wait_until(what: str, check, timeout: float, every: float = 3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def start_server(
    platform: Platform, username: str, profile: str = "small"
) -> tuple[requests.Session, str]:
    """Log ``username`` in, start their default server and wait until the hub says it is
    ready: (their session, their user API URL), for the caller's checks and the stop."""
    s = login(platform, username)
    api = f"{platform.hub_url}/hub/api/users/{username}"
    r = s.post(f"{api}/server", json={"profile": profile}, timeout=60)
    assert r.status_code in (201, 202), r.text[:300]
    try:
        wait_until(
            "the server",
            lambda: s.get(api, timeout=30).json()["servers"].get("", {}).get("ready"),
            600,
        )
    except BaseException:
        s.delete(f"{api}/server", timeout=60)  # a server that never came up is not left behind
        raise
    return s, api
