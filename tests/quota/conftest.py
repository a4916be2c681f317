"""Fixtures for the quota tests: a migrated quota database on SQLite or on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
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
    from hub_config.quota.db import session_factory

    factory = session_factory(db_url)
    yield factory
    factory.kw["bind"].dispose()


# --------------------------------------------------------------------------- the real platform
import importlib.util
import json
import os
import time
from pathlib import Path

import psutil
import requests
import yaml

REPO = Path(__file__).resolve().parents[2]
USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank"]
SAMPLE_S = 1.0
GRACE_S = 4.0


def _platform_helpers():
    """The local platform's own test helpers (tests/platform/conftest.py), loaded by path."""
    spec = importlib.util.spec_from_file_location("platform_conftest", REPO / "tests/platform/conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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
        """A requests session logged in to the hub (the login only; no server is spawned)."""
        s = requests.Session()
        r = s.get(f"{self.url}/hub/login", timeout=30)
        r.raise_for_status()
        xsrf = s.cookies.get("_xsrf", path="/hub/") or s.cookies.get("_xsrf")
        r = s.post(f"{self.url}/hub/login", data={"username": username, "_xsrf": xsrf,
                                                  "password": self.helpers.DEMO_PASSWORD},
                   allow_redirects=False, timeout=60)
        assert r.status_code == 302 and "login" not in r.headers.get("Location", ""), r.text[:300]
        return s

    def token(self, username: str) -> str:
        """A hub API token of ``username`` (made by the admin through the hub REST API)."""
        if username not in self._tokens:
            if self._admin is None:
                self._admin = self.login("admin")
                self._tokens["admin"] = self.helpers.api_token(self._admin, self.url, "admin")
            if username != "admin":
                r = requests.post(f"{self.url}/hub/api/users/{username}/tokens",
                                  headers={"Authorization": f"token {self._tokens['admin']}"},
                                  json={"note": "quota test", "expires_in": 3600}, timeout=30)
                assert r.status_code in (200, 201), r.text
                self._tokens[username] = r.json()["token"]
        return self._tokens[username]

    def api(self, username: str, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, self.quota + path, timeout=30,
                                headers={"Authorization": f"token {self.token(username)}"}, **kw)

    def hub(self, username: str, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, f"{self.url}/hub/api/{path}", timeout=60,
                                headers={"Authorization": f"token {self.token(username)}"}, **kw)

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
    work, state = base / "work", base / "state"
    work.mkdir()
    qsettings = base / "quota.yaml"
    qsettings.write_text(yaml.safe_dump({"sample_interval_s": SAMPLE_S, "grace_period_s": GRACE_S,
                                         "enforce_interval_s": 1.0}))
    old = os.environ.get("ROMAN_QUOTA_SETTINGS")
    os.environ["ROMAN_QUOTA_SETTINGS"] = str(qsettings)
    config = helpers.platform_config(demo={"users": USERS, "admin_users": ["admin"],
                                           "password": helpers.DEMO_PASSWORD})
    running = helpers.RunningPlatform(work, state, config)
    try:
        running.start()
        qp = QuotaPlatform(running, state, helpers)
        qp.wait(lambda: requests.get(qp.quota + "api/openapi.json", timeout=5).status_code == 200,
                60, "the quota service")
        yield qp
    finally:
        if old is None:
            os.environ.pop("ROMAN_QUOTA_SETTINGS", None)
        else:
            os.environ["ROMAN_QUOTA_SETTINGS"] = old
        if running.proc and running.proc.poll() is None:
            running.stop()
        running.kill_leftovers()
