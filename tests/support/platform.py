"""The local platform under test: run ``roman-platform up`` for real, talk to it over HTTP.

Used by tests/platform, tests/quota, tests/scaleout and tests/notebooks (their conftest files
import the fixtures below).

The platform runs as a subprocess exactly as an operator starts it, on free loopback ports, in a
temporary state folder; it is stopped with SIGINT (what Ctrl-C sends). Process trees are tracked
with psutil so a test can prove nothing outlives the platform.

The login step is ONE function (:func:`hub_login`), so that switching the platform from the demo
authenticator to the OIDC login changes this file only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
import yaml

DEMO_PASSWORD = "platform-test-password"
START_TIMEOUT = 120.0
UP_LINE = re.compile(r"is up at (http://127\.0\.0\.1:\d+)/")


# ---------------------------------------------------------------------------- login
def hub_login(
    session: requests.Session, hub_url: str, username: str, password: str = DEMO_PASSWORD
) -> requests.Response:
    """Log ``username`` in through the OIDC flow: hub -> development provider's form -> hub.

    The platform's demo users (platform.yaml ``demo``) are accounts of the development OIDC
    provider with the demo password. Returns the final response (after redirects); raises
    AssertionError when the login fails.
    """
    import html as _html
    from urllib.parse import urljoin

    r = session.get(f"{hub_url}/hub/oauth_login?next=", timeout=30)
    r.raise_for_status()
    form = re.search(r'<form method="post" action="([^"]+)"', r.text)
    assert form, f"no provider login form at {r.url}"
    request = _html.unescape(re.search(r'name="request" value="([^"]*)"', r.text).group(1))
    r = session.post(
        urljoin(r.url, _html.unescape(form.group(1))),
        data={"request": request, "username": username, "password": password},
        timeout=60,
        allow_redirects=True,
    )
    assert r.status_code == 200 and r.url.startswith(hub_url) and "/hub/login" not in r.url, (
        f"login of {username} failed: HTTP {r.status_code} at {r.url}"
    )
    return r


def browser_login(page, hub_url: str, username: str, password: str = DEMO_PASSWORD) -> None:
    """The same login as :func:`hub_login`, typed by a person into the sign-in form the hub
    sends them to (the development OIDC provider's, as MyST's in production).

    Leaves the page wherever the hub sends a logged-in user (their server, spawned on demand).
    """
    if not page.query_selector("input[name=password]"):
        page.goto(f"{hub_url}/hub/login")  # auto_login: straight on to the provider's form
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("input[type=submit], button[type=submit]")
    # A user without a server meets the tier's profile form (issue 4): start the default profile.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "/authorize" not in page.url and "/user/" not in page.url:
        if "/hub/spawn" in page.url and page.query_selector("#spawn_form"):
            with page.expect_navigation():
                page.click("#spawn_form button[type=submit]")
            break
        page.wait_for_timeout(200)


def browser_login_refused(page) -> bool:
    """True when the page shows the refusal of a login (still on the provider's sign-in form)."""
    page.wait_for_selector("text=Invalid username or password")
    return "/authorize" in page.url and page.query_selector("input[name=password]") is not None


def api_token(session: requests.Session, hub_url: str, username: str) -> str:
    """A hub API token for the logged-in user, made through the REST API with the session."""
    xsrf = session.cookies.get("_xsrf", path="/hub/") or session.cookies.get("_xsrf")
    r = session.post(
        f"{hub_url}/hub/api/users/{username}/tokens",
        json={"note": "platform test", "expires_in": 3600},
        headers={"X-XSRFToken": xsrf, "Referer": f"{hub_url}/hub/token"},
        timeout=30,
    )
    assert r.status_code in (200, 201), f"token request failed: {r.status_code} {r.text}"
    return r.json()["token"]


# ---------------------------------------------------------------------------- the platform
class RunningPlatform:
    """``roman-platform up`` as a child process, with the URL it printed."""

    def __init__(self, workdir: Path, state_dir: Path, config: dict) -> None:
        self.workdir = workdir
        self.state_dir = state_dir
        self.config_file = workdir / "platform.yaml"
        self.config_file.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.output: list[str] = []
        self.seen_pids: set[int] = set()
        self.startup_seconds = 0.0
        self._ready = threading.Event()

    def _reader(self) -> None:
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            self.output.append(line)
            m = UP_LINE.search(line)
            if m:
                self.url = m.group(1)
                self._ready.set()

    def start(self) -> RunningPlatform:
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "platform_lib.cli",
                "up",
                "--config",
                str(self.config_file),
                "--state-dir",
                str(self.state_dir),
            ],
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._reader, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and not self._ready.is_set():
            if self.proc.poll() is not None:
                break
            self._ready.wait(0.2)
        if not self._ready.is_set():
            self.stop()
            raise AssertionError("platform did not come up:\n" + "".join(self.output[-40:]))
        self.startup_seconds = time.monotonic() - t0
        self.track()
        return self

    def track(self) -> set[int]:
        """Remember every process currently under the supervisor (for the orphan check)."""
        if self.proc and self.proc.poll() is None:
            try:
                kids = psutil.Process(self.proc.pid).children(recursive=True)
            except psutil.Error:
                kids = []
            self.seen_pids.update(p.pid for p in kids)
        return self.seen_pids

    def stop(self, timeout: float = 60.0) -> int:
        """Ctrl-C: SIGINT to the supervisor only; its exit code."""
        assert self.proc
        if self.proc.poll() is None:
            self.track()
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            raise AssertionError("platform did not stop within the timeout") from None

    def leftovers(self) -> list[str]:
        """Processes that outlived the platform: tracked ones, or any naming the state folder."""
        alive = []
        for pid in sorted(self.seen_pids):
            try:
                p = psutil.Process(pid)
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid} {' '.join(p.cmdline())[:120]}")
            except psutil.Error:
                continue
        state = str(self.state_dir)
        for p in psutil.process_iter(["pid", "cmdline", "cwd"]):
            try:
                cmd = " ".join(p.info["cmdline"] or [])
                if (
                    state in cmd or (p.info["cwd"] or "").startswith(state)
                ) and p.pid != os.getpid():
                    alive.append(f"{p.pid} {cmd[:120]}")
            except psutil.Error:
                continue
        return alive

    def kill_leftovers(self) -> None:
        for pid in self.seen_pids:
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass


def platform_config(**overrides: object) -> dict:
    """A platform.yaml for tests: every port picked free, a known demo password."""
    config: dict = {
        "ports": dict.fromkeys(("http", "proxy_api", "hub", "gateway", "gateway_scheduler"), 0),
        "demo": {"users": ["alice", "bob"], "admin_users": ["admin"], "password": DEMO_PASSWORD},
        "gateway": {"worker_memory": "1 G", "idle_timeout": 600},
        # SeaweedFS yes; the sample survey and TAP are tested in tests/data and by tutorial 13
        "data": {"sample": False, "tap": False},
        # one OS account for all: per-user accounts are tested by the security suite's platform
        # (system_accounts_state), which needs root and a state folder other accounts can enter
        "accounts": {"mode": "shared"},
    }
    config.update(overrides)
    return config


def system_accounts_possible() -> bool:
    """Per-user system accounts need root (CI runs as root); elsewhere the platform falls back
    to single-account mode, which tests/security/test_system_accounts.py checks is labelled."""
    return os.geteuid() == 0


@contextlib.contextmanager
def traversable_state_dir() -> Iterator[Path]:
    """A state folder for a platform with per-user accounts: under /tmp (pytest's own temporary
    folders are inside /tmp/pytest-of-<user>, mode 0700, which the users' accounts cannot
    enter to reach their homes), removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="roman-platform-test-", dir="/tmp"))
    os.chmod(base, 0o711)
    try:
        yield base / "state"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def platform_dirs(tmp_path: Path) -> tuple[Path, Path]:
    work = tmp_path / "work"
    work.mkdir()
    return work, tmp_path / "state"


@pytest.fixture
def start_platform(platform_dirs: tuple[Path, Path]) -> Iterator:
    """Call with optional config overrides to get a started :class:`RunningPlatform`."""
    started: list[RunningPlatform] = []

    def start(**overrides: object) -> RunningPlatform:
        work, state = platform_dirs
        p = RunningPlatform(work, state, platform_config(**overrides))
        started.append(p)
        return p.start()

    yield start
    for p in started:
        if p.proc and p.proc.poll() is None:
            p.stop()
        p.kill_leftovers()


# ---------------------------------------------------------------------------- hub REST helpers
def wait_for_server(
    hub_url: str, username: str, token: str, ready: bool, timeout: float = 90.0
) -> dict:
    """Poll the REST API until the user's default server is (not) ready; the user model."""
    deadline = time.monotonic() + timeout
    model: dict = {}
    while time.monotonic() < deadline:
        r = requests.get(
            f"{hub_url}/hub/api/users/{username}",
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        r.raise_for_status()
        model = r.json()
        server = model.get("servers", {}).get("")
        is_ready = bool(server and server.get("ready"))
        pending = bool(server and server.get("pending"))
        if is_ready == ready and not pending:
            return model
        time.sleep(0.25)
    raise AssertionError(f"server of {username} not ready={ready} after {timeout} s: {model}")


# ---------------------------------------------------------------------------- kernels
class Kernel:
    """A python3 kernel on a user's server, driven through the kernels REST + websocket API."""

    def __init__(self, server_url: str, token: str, timeout: float = 180.0) -> None:
        import websocket  # websocket-client

        self.server_url, self.timeout = server_url, timeout
        self.headers = {"Authorization": f"token {token}"}
        r = requests.post(
            f"{server_url}api/kernels", json={"name": "python3"}, headers=self.headers, timeout=60
        )
        assert r.status_code == 201, f"kernel start failed: {r.status_code} {r.text}"
        self.kernel_id = r.json()["id"]
        ws_url = server_url.replace("http://", "ws://") + f"api/kernels/{self.kernel_id}/channels"
        self.ws = websocket.create_connection(
            ws_url, header=[f"Authorization: token {token}"], timeout=timeout
        )
        self.session = uuid.uuid4().hex

    def execute(self, code: str) -> str:
        """Run ``code``; its stdout. Raises AssertionError with the traceback if it raises."""
        msg_id = uuid.uuid4().hex
        self.ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": "test",
                        "session": self.session,
                        "msg_type": "execute_request",
                        "version": "5.3",
                        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "buffers": [],
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                }
            )
        )
        out: list[str] = []
        error: dict | None = None
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content.get("name") == "stdout":
                out.append(content["text"])
            elif kind == "error":
                error = content
            elif kind == "status" and content.get("execution_state") == "idle":
                break
        else:
            raise AssertionError(f"kernel did not finish within {self.timeout} s")
        if error:
            raise AssertionError("kernel error:\n" + "\n".join(error.get("traceback", [])))
        return "".join(out)

    def close(self) -> None:
        self.ws.close()
        requests.delete(
            f"{self.server_url}api/kernels/{self.kernel_id}", headers=self.headers, timeout=30
        )

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_in_kernel(server_url: str, token: str, code: str, timeout: float = 180.0) -> str:
    """Run ``code`` in a new kernel on the server; its stdout."""
    with Kernel(server_url, token, timeout) as kernel:
        return kernel.execute(code)


@pytest.fixture
def login():
    """The login helper as a fixture (importlib mode makes importing conftest unreliable)."""
    return hub_login


@pytest.fixture
def web_login():
    """Browser login helpers: ``.login(page, hub_url, user[, password])``, ``.refused(page)``."""

    class _Web:
        login = staticmethod(browser_login)
        refused = staticmethod(browser_login_refused)

    return _Web


def login_and_spawn(hub_url: str, username: str) -> tuple[str, str]:
    """Log in (OIDC), get an API token, start the default server: (token, server URL)."""
    session = requests.Session()
    hub_login(session, hub_url, username)
    token = api_token(session, hub_url, username)
    r = requests.post(
        f"{hub_url}/hub/api/users/{username}/server",
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )
    assert r.status_code in (201, 202), r.text
    model = wait_for_server(hub_url, username, token, ready=True)
    return token, f"{hub_url}{model['servers']['']['url']}"


@pytest.fixture
def hub_api():
    """REST helpers as a namespace: token, wait_for_server, run_in_kernel, kernel, spawn."""

    class _Api:
        token = staticmethod(api_token)
        wait_for_server = staticmethod(wait_for_server)
        run_in_kernel = staticmethod(run_in_kernel)
        kernel = Kernel
        login_and_spawn = staticmethod(login_and_spawn)

    return _Api
