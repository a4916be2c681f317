"""Fixtures for the identity tests: a real OIDC provider, JupyterHub and dask-gateway-server.

All processes are the project's own code started from the command line on 127.0.0.1: the
development OIDC provider (``python -m hub_config.oidc_dev``), dask-gateway-server with
``hub_config.gateway`` wired in, and JupyterHub (+ configurable-http-proxy) with the
``RomanOIDCAuthenticator`` and a local-process spawner carrying ``TierLocalSpawnerMixin``.

The policy used is the bundled one except the Research tier's gateway numbers, which are shrunk
(2 workers per cluster, 3 in total) so the per-user-total test needs only a few worker processes,
and the servers-at-once limit (Research keeps its 2, the others get 1), so the limit tests start
five real JupyterLab servers in all (the bundled values are checked in test_policy.py).
"""

from __future__ import annotations

import html
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
import yaml

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
BIN = Path(PY).parent
CLIENT_ID = "roman-hub"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(
    url: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0, ok: int = 500
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{url}: process exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
            )
        try:
            if requests.get(url, timeout=2, allow_redirects=False).status_code < ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not answering after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@dataclass
class Stack:
    hub_url: str
    issuer: str
    client_secret: str
    gateway_url: str
    gateway_proxy: str
    admin_token: str
    state_dir: Path
    policy_file: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def api(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        headers = {"Authorization": f"token {token or self.admin_token}"}
        return requests.request(
            method, f"{self.hub_url}/hub/api{path}", headers=headers, timeout=60, **kw
        )

    def user_token(self, name: str) -> str:
        r = self.api("POST", f"/users/{name}/tokens", json={"note": "identity tests"})
        r.raise_for_status()
        return r.json()["token"]


HUB_CONFIG = r"""
# JupyterHub config for the identity tests (written by tests/identity/conftest.py).
import os
from jupyterhub.spawner import SimpleLocalProcessSpawner
from hub_config.spawner import TierLocalSpawnerMixin

class TestSpawner(TierLocalSpawnerMixin, SimpleLocalProcessSpawner):
    def get_args(self):
        return [*super().get_args(), "--allow-root"] if os.geteuid() == 0 else super().get_args()

c = get_config()
c.JupyterHub.bind_url = "{hub_url}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_api_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.JupyterHub.db_url = "sqlite:///{state}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.ConfigurableHTTPProxy.pid_file = "{state}/proxy.pid"
c.JupyterHub.authenticator_class = "hub_config.auth.RomanOIDCAuthenticator"
c.RomanOIDCAuthenticator.oidc_issuer = "{issuer}"
c.RomanOIDCAuthenticator.client_id = "{client_id}"
c.RomanOIDCAuthenticator.client_secret = "{client_secret}"
c.RomanOIDCAuthenticator.oauth_callback_url = "{hub_url}/hub/oauth_callback"
c.RomanOIDCAuthenticator.post_logout_redirect_uri = "{hub_url}/hub/login"
c.JupyterHub.spawner_class = TestSpawner
c.Spawner.cmd = ["{bin}/jupyterhub-singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.Spawner.notebook_dir = "{state}/home"
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 0  # the tier policy decides (TierSpawnerMixin)
c.JupyterHub.services = [{{"name": "test-admin", "api_token": "{admin_token}"}}]
c.JupyterHub.load_roles = [{{"name": "test-admin", "scopes": ["admin:users", "admin:servers", "tokens", "admin:groups", "list:users", "read:roles"], "services": ["test-admin"]}}]
c.JupyterHub.cleanup_servers = True
"""

GATEWAY_CONFIG = r"""
# dask-gateway-server config for the identity tests (written by tests/identity/conftest.py).
from hub_config.gateway import configure_gateway
c.DaskGateway.address = "127.0.0.1:{private_port}"
c.Proxy.address = "127.0.0.1:{http_port}"
c.Proxy.tcp_address = "127.0.0.1:{tcp_port}"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.JupyterHubAuthenticator"
c.JupyterHubAuthenticator.jupyterhub_api_url = "{hub_url}/hub/api"
c.JupyterHubAuthenticator.jupyterhub_api_token = "{admin_token}"
c.JupyterHubAuthenticator.cache_max_age = 0
configure_gateway(c, "dask_gateway_server.backends.local.UnsafeLocalBackend")
c.UnsafeLocalBackend.clusters_directory = "{state}/clusters"
c.UnsafeLocalBackend.stop_clusters_on_shutdown = True
c.ClusterConfig.scheduler_cmd = ["{bin}/dask", "scheduler"]
c.ClusterConfig.worker_cmd = ["{bin}/dask", "worker"]
c.ClusterConfig.scheduler_cores = 1
c.ClusterConfig.scheduler_memory = "1 G"
"""


def _start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    out = log.open("w")
    return subprocess.Popen(
        cmd,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=log.parent,
        env=env or os.environ.copy(),
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


def shrunk_policy(path: Path) -> Path:
    data = yaml.safe_load((REPO / "hub_config" / "policy.yaml").read_text())
    gw = data["tiers"]["research"]["gateway"]
    # per-cluster budgets shrunk too: a total must hold one cluster (hub_config.policy checks it)
    gw.update(
        max_workers=2,
        max_total_workers=3,
        max_total_cores=6,
        max_total_memory_gib=24,
        max_cores_per_cluster=4,
        max_memory_gib_per_cluster=16,
    )
    for name, tier in data["tiers"].items():  # each server is a real JupyterLab (5-20 s here)
        tier["max_named_servers"] = 2 if name == "research" else 1
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="session")
def identity_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not shutil.which("configurable-http-proxy"):
        raise RuntimeError(
            "configurable-http-proxy not on PATH; run `make up` once (installs .local/bin)"
        )
    state = tmp_path_factory.mktemp("identity")
    (state / "home").mkdir()
    policy = shrunk_policy(state / "policy.yaml")
    hub_port, hub_api, proxy_api, oidc_port = (_free_port() for _ in range(4))
    gw_private, gw_http, gw_tcp = (_free_port() for _ in range(3))
    hub_url = f"http://127.0.0.1:{hub_port}"
    issuer = f"http://127.0.0.1:{oidc_port}"
    secret = secrets.token_hex(24)
    admin_token = secrets.token_hex(24)
    stack = Stack(
        hub_url=hub_url,
        issuer=issuer,
        client_secret=secret,
        gateway_url=f"http://127.0.0.1:{gw_http}",
        gateway_proxy=f"gateway://127.0.0.1:{gw_tcp}",
        admin_token=admin_token,
        state_dir=state,
        policy_file=policy,
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "ROMAN_POLICY_FILE": str(policy),
        "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
        # No local overlay of an older environment (hub_config.environments): this stack runs
        # the platform's one Python environment, so the previous one is refused here; the local
        # platform with an overlay is tested in tests/platform/test_environments_e2e.py.
        "ROMAN_LOCAL_ENVIRONMENTS_DIR": str(state / "no-overlays"),
    }
    try:
        prov = _start(
            [
                PY,
                "-m",
                "hub_config.oidc_dev",
                "--port",
                str(oidc_port),
                "--issuer",
                issuer,
                "--client-id",
                CLIENT_ID,
                "--client-secret",
                secret,
                "--redirect-uri",
                f"{hub_url}/hub/oauth_callback",
                "--post-logout-redirect-uri",
                f"{hub_url}/hub/login",
                "--state-dir",
                str(state / "oidc"),
            ],
            state / "oidc.log",
            env,
        )
        stack.procs.append(prov)
        fmt = dict(
            hub_url=hub_url,
            hub_api_port=hub_api,
            proxy_api_port=proxy_api,
            state=state,
            issuer=issuer,
            client_id=CLIENT_ID,
            client_secret=secret,
            policy=policy,
            bin=BIN,
            admin_token=admin_token,
            private_port=gw_private,
            http_port=gw_http,
            tcp_port=gw_tcp,
        )
        (state / "jupyterhub_config.py").write_text(HUB_CONFIG.format(**fmt))
        (state / "gateway_config.py").write_text(GATEWAY_CONFIG.format(**fmt))
        _wait_http(f"{issuer}/.well-known/openid-configuration", prov, state / "oidc.log")
        hub = _start(
            [str(BIN / "jupyterhub"), "-f", str(state / "jupyterhub_config.py")],
            state / "hub.log",
            env,
        )
        stack.procs.append(hub)
        gw = _start(
            [str(BIN / "dask-gateway-server"), "-f", str(state / "gateway_config.py")],
            state / "gateway.log",
            env,
        )
        stack.procs.append(gw)
        _wait_http(f"{hub_url}/hub/api", hub, state / "hub.log", 90, ok=300)
        _wait_http(f"{stack.gateway_url}/api/health", gw, state / "gateway.log", 60)
        yield stack
    finally:
        for p in reversed(stack.procs):
            _stop(p)


# ----------------------------------------------------------------------------- login helpers
DEMO_PASSWORDS = {
    "entry": "entry-demo",
    "research": "research-demo",
    "teammember": "team-demo",
    "consortium": "consortium-demo",
    "teamadmin": "teamadmin-demo",
    "platformadmin": "platformadmin-demo",
}


def provider_login_form(session: requests.Session, authorize_url: str) -> tuple[str, str]:
    """GET the provider's login page; returns (form action URL, hidden request value)."""
    r = session.get(authorize_url, allow_redirects=False, timeout=30)
    assert r.status_code == 200, r.text
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', r.text).group(1))
    request = html.unescape(re.search(r'name="request" value="([^"]*)"', r.text).group(1))
    return urljoin(authorize_url, action), request


def start_login(stack: Stack, session: requests.Session) -> str:
    """Hub login start: returns the provider authorize URL the hub redirects to."""
    r = session.get(
        f"{stack.hub_url}/hub/oauth_login",
        params={"next": "/hub/home"},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 302, r.text
    assert r.headers["Location"].startswith(f"{stack.issuer}/authorize?")
    return r.headers["Location"]


def provider_code_redirect(
    stack: Stack, session: requests.Session, authorize_url: str, username: str
) -> str:
    """Log in at the provider; returns the hub callback URL (with code and state)."""
    action, request = provider_login_form(session, authorize_url)
    r = session.post(
        action,
        data={"request": request, "username": username, "password": DEMO_PASSWORDS[username]},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 302, r.text
    loc = r.headers["Location"]
    assert loc.startswith(f"{stack.hub_url}/hub/oauth_callback?"), loc
    return loc


def login(stack: Stack, username: str) -> requests.Session:
    """The full browser-less login: hub -> provider form -> callback -> hub cookie."""
    s = requests.Session()
    authorize = start_login(stack, s)
    callback = provider_code_redirect(stack, s, authorize, username)
    r = s.get(callback, allow_redirects=False, timeout=60)
    assert r.status_code == 302, f"callback refused: {r.status_code} {r.text[:500]}"
    assert any(
        c.name.startswith("jupyterhub-session-id") or c.name == "jupyterhub-hub-login"
        for c in s.cookies
    ), list(s.cookies)
    return s


@pytest.fixture(scope="session")
def stack(identity_stack: Stack) -> Stack:
    return identity_stack


def run_async(coro):
    """Run a coroutine to completion in its own thread: Playwright's sync API (the browser
    fixture) keeps an event loop running in the main thread, where asyncio.run refuses."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
