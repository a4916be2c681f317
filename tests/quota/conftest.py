"""Fixtures for the quota tests: a migrated quota database on SQLite or on PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
import yaml
from sqlalchemy import create_engine, text


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> Iterator[str]:
    """An EMPTY database URL (not migrated): one SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'quota.sqlite'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = "q" + uuid.uuid4().hex[:12]
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    yield server.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture
def sessions(db_url):
    from hub_config.quota.storage.db import session_factory

    factory = session_factory(db_url)
    yield factory
    factory.kw["bind"].dispose()


# --------------------------------------------------------------------------- the real platform

REPO = Path(__file__).resolve().parents[2]
USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank"]
SAMPLE_S = 1.0
GRACE_S = 4.0


def _platform_helpers():
    """The local platform's own test helpers (tests/support/platform.py)."""
    from tests.support import platform

    return platform


class QuotaPlatform:
    """``roman-platform up`` with the quota service sampling every second; helpers to use it."""

    def __init__(self, running, state: Path, helpers):
        self.running, self.state, self.helpers = running, state, helpers
        self.url = running.url
        self.quota = f"{self.url}/services/quota/"
        self.settings = json.loads((state / "settings.json").read_text())
        self._admin: requests.Session | None = None
        self._tokens: dict[str, str] = {}

    def login(self, username: str) -> requests.Session:
        """A requests session logged in to the hub, landing on the token page (no spawn).

        Works with either login the platform uses: the hub's own form (development logins) or
        the OIDC flow through the development provider's sign-in form.
        """
        import html
        import re
        from urllib.parse import urljoin

        password = self.helpers.DEMO_PASSWORD
        s = requests.Session()
        r = s.get(f"{self.url}/hub/login?next=/hub/token", timeout=30)
        r.raise_for_status()
        if 'id="username_input"' in r.text:
            xsrf = s.cookies.get("_xsrf", path="/hub/") or s.cookies.get("_xsrf")
            r = s.post(
                f"{self.url}/hub/login?next=/hub/token",
                timeout=60,
                data={"username": username, "password": password, "_xsrf": xsrf},
            )
        else:
            if "<form" not in r.text or 'name="request"' not in r.text:
                r = s.get(f"{self.url}/hub/oauth_login?next=/hub/token", timeout=30)
            form = re.search(r'<form method="post" action="([^"]+)"', r.text)
            assert form, f"no login form at {r.url}"
            request = html.unescape(re.search(r'name="request" value="([^"]*)"', r.text).group(1))
            r = s.post(
                urljoin(r.url, html.unescape(form.group(1))),
                timeout=60,
                data={"request": request, "username": username, "password": password},
            )
        assert r.status_code == 200 and r.url.startswith(f"{self.url}/hub/token"), (
            r.status_code,
            r.url,
        )
        return s

    def token(self, username: str) -> str:
        """A hub API token of ``username`` (made by the admin through the hub REST API)."""
        if username not in self._tokens:
            if self._admin is None:
                self._admin = self.login("admin")
                self._tokens["admin"] = self.helpers.api_token(self._admin, self.url, "admin")
            if username != "admin":
                r = requests.post(
                    f"{self.url}/hub/api/users/{username}/tokens",
                    headers={"Authorization": f"token {self._tokens['admin']}"},
                    json={"note": "quota test", "expires_in": 3600},
                    timeout=30,
                )
                assert r.status_code in (200, 201), r.text
                self._tokens[username] = r.json()["token"]
        return self._tokens[username]

    def api(self, username: str, method: str, path: str, **kw) -> requests.Response:
        return requests.request(
            method,
            self.quota + path,
            timeout=30,
            headers={"Authorization": f"token {self.token(username)}"},
            **kw,
        )

    def hub(self, username: str, method: str, path: str, **kw) -> requests.Response:
        return requests.request(
            method,
            f"{self.url}/hub/api/{path}",
            timeout=60,
            headers={"Authorization": f"token {self.token(username)}"},
            **kw,
        )

    def quota_service_pids(self) -> list[int]:
        out = []
        for p in psutil.process_iter(["pid", "cmdline"]):
            cmd = p.info["cmdline"] or []
            if "hub_config.quota.service" in cmd and any(str(self.state) in c for c in cmd):
                out.append(p.info["pid"])
        return out

    def wait(self, predicate, timeout: float, what: str, every: float = 0.25):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="session")
def quota_platform(tmp_path_factory) -> Iterator[QuotaPlatform]:
    helpers = _platform_helpers()
    base = tmp_path_factory.mktemp("quota-platform")
    work = base / "work"
    work.mkdir()
    # The security suite's platform (this one) runs with per-user system accounts where it can.
    system = helpers.system_accounts_possible()
    cleanup = contextlib.ExitStack()
    state = cleanup.enter_context(helpers.traversable_state_dir()) if system else base / "state"
    qsettings = base / "quota.yaml"
    qsettings.write_text(
        yaml.safe_dump(
            {
                "sample_interval_s": SAMPLE_S,
                "grace_period_s": GRACE_S,
                "enforce_interval_s": 1.0,
                "storage_interval_s": 1.0,
            }
        )
    )
    old = os.environ.get("ROMAN_QUOTA_SETTINGS")
    os.environ["ROMAN_QUOTA_SETTINGS"] = str(qsettings)
    # Generous spawn timeouts: on a busy 2-core machine a JupyterLab server can take a minute.
    config = helpers.platform_config(
        demo={"users": USERS, "admin_users": ["admin"], "password": helpers.DEMO_PASSWORD},
        singleuser={"start_timeout": 300, "http_timeout": 240},
        accounts={"mode": "system" if system else "shared"},
    )
    running = helpers.RunningPlatform(work, state, config)
    try:
        running.start()
        qp = QuotaPlatform(running, state, helpers)
        qp.wait(
            lambda: requests.get(qp.quota + "api/openapi.json", timeout=5).status_code == 200,
            60,
            "the quota service",
        )
        # With the OIDC login, hub users exist once they logged in; the tests' users exist now.
        r = qp.hub("admin", "POST", "users", json={"usernames": USERS})
        assert r.status_code in (201, 409), r.text
        yield qp
    finally:
        if old is None:
            os.environ.pop("ROMAN_QUOTA_SETTINGS", None)
        else:
            os.environ["ROMAN_QUOTA_SETTINGS"] = old
        if running.proc and running.proc.poll() is None:
            running.stop()
        running.kill_leftovers()
        cleanup.close()


# --------------------------------------------------------------------------- browser login
def _browser_login(page, target: str, username: str, password: str) -> None:
    """Open ``target``; log in wherever the redirects land (the OIDC provider's sign-in form or
    the hub's development form); end back on ``target``."""
    page.goto(target)
    for _ in range(4):
        if page.url.startswith(target):
            return
        if page.locator("#username_input").count():
            page.fill("#username_input", username)
            page.fill("#password_input", password)
            page.click("#login_submit")
        elif page.locator("form input#username").count():
            page.fill("#username", username)
            page.fill("#password", password)
            page.click("#login")
        elif page.locator("a[href*='oauth_login']").count():
            page.locator("a[href*='oauth_login']").first.click()
        page.wait_for_load_state("load")
    assert page.url.startswith(target), f"login of {username} ended at {page.url}"


@pytest.fixture
def browser_login():
    return _browser_login
