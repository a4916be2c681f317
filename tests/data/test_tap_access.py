"""Who sees what through the hub-facing TAP service: attacks against a real hub, proxy and DaCHS.

A real JupyterHub (users, ``team-*`` groups and tokens made through its REST API), the TAP proxy
(:mod:`hub_config.tap.proxy`) as a hub-managed service at ``/services/tap/`` (registered by
:func:`hub_config.local.tap_platform.configure_hub`, as the local platform does), and a real
DaCHS on its own PostgreSQL. Every query goes through the hub's HTTP proxy with a hub token, the
way a notebook sends it (``platform_lib.data.tap_client``); each refusal is asserted from outside.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import pyvo
import requests

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RA, DEC = 150.0, 2.0
SERVER_SCOPES = ["users:activity!user", "read:users:groups!user", "access:services!service=tap"]

HUB_CONFIG = """
c = get_config()
c.JupyterHub.bind_url = "{hub_url}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_api}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api}"
c.JupyterHub.db_url = "sqlite:///{state}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.ConfigurableHTTPProxy.pid_file = "{state}/proxy.pid"
# users are made through the REST API (nobody logs in here), so any authenticator would do
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "{admin_token}"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{{"name": "test-admin", "api_token": "{admin_token}"}}]
c.JupyterHub.load_roles = [
    {{"name": "test-admin", "services": ["test-admin"],
      "scopes": ["admin:users", "admin:groups", "tokens", "list:users"]}},
]
c.Spawner.server_token_scopes = ["users:activity!user", "read:users:groups!user"]
# the platform's own wiring (hub_config/modes/local.py does the same from settings.tap): the hub
# starts the TAP proxy as a managed service and lets users' and servers' tokens reach it
from hub_config.local.tap_platform import configure_hub
configure_hub(c, {tap!r})
assert "access:services!service=tap" in c.Spawner.server_token_scopes
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90, ok: int = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: exited {proc.returncode}\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2, allow_redirects=False).status_code < ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not answering after {timeout} s\n{log.read_text()[-3000:]}")


def _row(path, level, visibility="public", team=None, owner=None):
    from platform_lib.data.obscore import obscore_row

    d = 0.01
    row = {
        "path": path,
        "level": level,
        "product_type": "source_catalog" if level == "L5" else "cal",
        "optical_element": "F158",
        "s_region": f"POLYGON ICRS {RA - d} {DEC - d} {RA + d} {DEC - d} "
        f"{RA + d} {DEC + d} {RA - d} {DEC + d}",
        "ra_center": RA,
        "dec_center": DEC,
        "size": 2048,
    }
    extra = {}
    if level == "L5":
        from platform_lib.data.l5 import did

        url = f"s3://roman-users/{path}"
        extra = dict(
            visibility=visibility,
            team=team,
            owner_name=owner,
            licence="CC-BY-4.0",
            obs_publisher_did=did(url),
            product_path=url,
        )
    return obscore_row(row, f"s3://roman/{path}", **extra)


class Hub:
    def __init__(self, url: str, admin_token: str) -> None:
        self.url, self.admin_token = url, admin_token

    def api(self, method: str, path: str, **kw) -> requests.Response:
        r = requests.request(
            method,
            f"{self.url}/hub/api{path}",
            headers={"Authorization": f"token {self.admin_token}"},
            timeout=60,
            **kw,
        )
        assert r.status_code < 400, (path, r.status_code, r.text)
        return r

    def token(self, user: str, scopes=SERVER_SCOPES) -> str:
        body = {"note": "tap access tests"} | ({"scopes": scopes} if scopes else {})
        return self.api("POST", f"/users/{user}/tokens", json=body).json()["token"]


@pytest.fixture(scope="module")
def platform():
    from hub_config.tap.service import TapService, dachs_available

    missing = dachs_available()
    if missing:
        pytest.fail(f"{missing}: run scripts/system-deps.sh")
    chp = shutil.which("configurable-http-proxy") or str(
        REPO / ".local/bin/configurable-http-proxy"
    )
    if not Path(chp).exists():
        pytest.fail("configurable-http-proxy not found; run `make up` once (installs .local/bin)")
    base = Path(tempfile.mkdtemp(prefix="roman-tap-access-"))
    base.chmod(0o755)  # PostgreSQL runs as the postgres user and must reach its folder
    procs: list[subprocess.Popen] = []
    service = TapService(base / "tap", default_maxrec=5)
    try:
        service.start()
        service.wait_ready(120)
        service.replace_products(
            [_row(f"L2/r{i:04d}_wfi01_f158_cal.asdf", "L2") for i in range(3)], levels=("L2",)
        )
        for name, vis, team, owner in (
            ("alice-private", "private", None, "alice"),
            ("lensing-team", "team", "lensing", "alice"),
            ("alice-public", "public", None, "alice"),
            ("carol-private", "private", None, "carol"),
            ("transients-team", "team", "transients", "carol"),
        ):
            space = team if vis == "team" else owner
            service.add_product(_row(f"{space}/l5/{name}_cat.parquet", "L5", vis, team, owner))
        hub_port, hub_api, proxy_api, tap_port = (_free_port() for _ in range(4))
        hub_url = f"http://127.0.0.1:{hub_port}"
        admin_token = secrets.token_hex(24)
        (base / "hub").mkdir()
        cfg = base / "hub" / "jupyterhub_config.py"
        cfg.write_text(
            HUB_CONFIG.format(
                hub_url=hub_url,
                hub_api=hub_api,
                proxy_api=proxy_api,
                state=base / "hub",
                admin_token=admin_token,
                tap={
                    "proxy_url": f"http://127.0.0.1:{tap_port}",
                    "environment": {
                        **service.proxy_env(),
                        "ROMAN_TAP_PUBLIC_URL": f"{hub_url}/services/tap",
                        "ROMAN_TAP_CACHE_SECONDS": "0",  # team changes take effect at once here
                        "ROMAN_TAP_USER_JOBS": "2",
                    },
                },
            )
        )
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "PATH": f"{Path(chp).parent}:{BIN}:{os.environ.get('PATH', '')}",
        }
        hub_log = base / "hub.log"
        procs.append(
            subprocess.Popen(
                [str(BIN / "jupyterhub"), "-f", str(cfg)],
                cwd=base / "hub",
                env=env,
                stdout=hub_log.open("w"),
                stderr=subprocess.STDOUT,
            )
        )
        _wait(f"{hub_url}/hub/api", procs[0], hub_log)
        _wait(f"{hub_url}/services/tap/availability", procs[0], hub_log)  # the hub's route
        hub = Hub(hub_url, admin_token)
        for user in ("alice", "bob", "carol", "dave"):
            hub.api("POST", f"/users/{user}")
        hub.api("POST", "/groups/team-lensing", json={"users": ["alice", "bob"]})
        hub.api("POST", "/groups/team-lensing-admins", json={"users": ["alice"]})
        hub.api("POST", "/groups/team-transients", json={"users": ["carol"]})
        yield hub, service, f"{hub_url}/services/tap"
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        service.stop()
        shutil.rmtree(base, ignore_errors=True)


def _names(svc) -> list[str]:
    rows = svc.search("SELECT product_path FROM roman.products WHERE roman_level = 'L5'")
    return sorted(p.rsplit("/", 1)[-1].removesuffix("_cat.parquet") for p in rows["product_path"])


def _svc(url, token=None):
    from platform_lib.data.tap_client import tap_service

    return tap_service(url, token, anonymous=token is None)


def test_a_user_sees_public_own_and_team_rows_only(platform):
    hub, _, url = platform
    alice, bob, carol = (_svc(url, hub.token(u)) for u in ("alice", "bob", "carol"))
    assert _names(alice) == ["alice-private", "alice-public", "lensing-team"]
    assert _names(bob) == ["alice-public", "lensing-team"]  # team-mate: not alice's private
    assert _names(carol) == ["alice-public", "carol-private", "transients-team"]
    assert _names(_svc(url, hub.token("dave"))) == ["alice-public"]  # in no team
    # a user's own token from the token page (all of the user's scopes) works the same way
    assert _names(_svc(url, hub.token("bob", scopes=None))) == ["alice-public", "lensing-team"]
    # the standard ObsCore view, survey rows and a cone: public survey rows for everybody
    cone = bob.search(
        f"SELECT obs_publisher_did, roman_level FROM roman.products WHERE 1 = INTERSECTS("
        f"s_region, CIRCLE('ICRS', {RA}, {DEC}, 0.001))"
    ).to_table()
    assert sorted(cone["roman_level"]) == ["L2"] * 3 + ["L5"] * 2
    # store URLs come back as they are (DaCHS made s3:// into a link to its own /getproduct)
    urls = bob.search("SELECT access_url FROM ivoa.obscore WHERE calib_level = 2")["access_url"]
    assert sorted(urls) == [f"s3://roman/L2/r{i:04d}_wfi01_f158_cal.asdf" for i in range(3)]


def test_adql_naming_another_users_private_product_returns_nothing(platform):
    hub, service, url = platform
    bob = _svc(url, hub.token("bob"))
    did = _row("alice/l5/alice-private_cat.parquet", "L5", "private", None, "alice")[
        "obs_publisher_did"
    ]
    for query in (
        f"SELECT * FROM ivoa.obscore WHERE obs_publisher_did = '{did}'",
        "SELECT * FROM roman.products WHERE owner_name = 'alice' AND visibility = 'private'",
        "SELECT * FROM roman.products WHERE team = 'transients'",
        "SELECT a.obs_id FROM roman.products AS a JOIN ivoa.obscore AS b "
        "ON a.obs_publisher_did = b.obs_publisher_did WHERE a.visibility = 'private'",
    ):
        assert len(bob.search(query)) == 0, query
    n = bob.search(
        "SELECT COUNT(*) AS n FROM roman.products WHERE visibility IN ('team', 'private')"
    )
    assert int(n["n"][0]) == 1  # only his team's row
    # the owner does see it (the query is right; the policy is what hides it)
    assert (
        len(
            _svc(url, hub.token("alice")).search(
                f"SELECT * FROM ivoa.obscore WHERE obs_publisher_did = '{did}'"
            )
        )
        == 1
    )


def test_teams_follow_the_hubs_groups(platform):
    hub, _, url = platform
    dave = _svc(url, hub.token("dave"))
    assert _names(dave) == ["alice-public"]
    hub.api("POST", "/groups/team-lensing/users", json={"users": ["dave"]})
    try:
        assert _names(dave) == ["alice-public", "lensing-team"]
    finally:
        hub.api("DELETE", "/groups/team-lensing/users", json={"users": ["dave"]})
    assert _names(dave) == ["alice-public"]  # removed from the team: its rows are gone


def test_a_new_users_first_queries_at_once_all_answer(platform):
    """The proxy creates a user's DaCHS account on first use: 8 first queries at once."""
    from concurrent.futures import ThreadPoolExecutor

    hub, _, url = platform
    hub.api("POST", "/users/erin")
    hub.api("POST", "/groups/team-transients/users", json={"users": ["erin"]})
    token = hub.token("erin")
    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(lambda _: _names(_svc(url, token)), range(8)))
    assert seen == [["alice-public", "transients-team"]] * 8


def test_unauthenticated_sees_public_rows_and_bad_tokens_are_refused(platform):
    import pyvo

    hub, _, url = platform
    assert _names(_svc(url)) == ["alice-public"]
    for token, status, words in (
        ("not-a-token", 401, "does not accept"),
        (hub.token("bob", scopes=["read:users:groups!user"]), 403, "may not use the TAP"),
    ):
        r = requests.post(
            f"{url}/sync",
            data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": "SELECT * FROM ivoa.obscore"},
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        assert r.status_code == status and words in r.json()["message"], (token, r.text[:300])
    with pytest.raises(pyvo.dal.DALServiceError):
        _svc(url, "forged").search("SELECT * FROM ivoa.obscore")
    # a client's own basic auth (e.g. alice's name with a guessed DaCHS password) is not DaCHS's
    r = requests.get(f"{url}/capabilities", auth=("alice", "guessed"), timeout=30)
    assert r.status_code == 401
    # a revoked token stops working at once
    token = hub.token("alice")
    tid = hub.api("GET", "/users/alice/tokens").json()["api_tokens"][-1]["id"]
    hub.api("DELETE", f"/users/alice/tokens/{tid}")
    assert (
        requests.get(
            f"{url}/tables", headers={"Authorization": f"token {token}"}, timeout=30
        ).status_code
        == 401
    )
    # DaCHS's other pages are not behind the hub
    assert requests.get(f"{url}/../../__system__/services/overview", timeout=30).status_code == 404
    assert requests.get(f"{url}/__system__/adql/query/form", timeout=30).status_code == 404
    caps = requests.get(f"{url}/capabilities", timeout=30).text
    assert f"{url}/tables" in caps and "__system__" not in caps  # they name the hub's address
    assert len(_svc(url).tables) >= 2  # pyvo reads the table metadata through the hub


def test_maxrec_overflow_is_clear(platform):
    import pyvo

    hub, _, url = platform
    alice = _svc(url, hub.token("alice"))  # sees 6 rows; the service's default MAXREC is 5
    with pytest.warns(pyvo.dal.exceptions.DALOverflowWarning, match="truncated"):
        result = alice.search("SELECT * FROM ivoa.obscore")
    assert len(result) == 5 and result.query_status == "OVERFLOW"
    assert alice.search("SELECT * FROM ivoa.obscore", maxrec=100).query_status == "OK"


def test_async_jobs_through_the_hub_run_as_the_user_and_stay_theirs(platform):
    """pyvo's run_async through the hub: the job is the token's user's, run as that user."""
    import pyvo

    hub, _, url = platform
    query = "SELECT product_path FROM roman.products WHERE roman_level = 'L5'"

    def names(svc):
        rows = svc.run_async(query, maxrec=100).to_table()["product_path"]
        return sorted(p.rsplit("/", 1)[-1].removesuffix("_cat.parquet") for p in rows)

    alice_token, bob_token = hub.token("alice"), hub.token("bob")
    assert names(_svc(url, alice_token)) == ["alice-private", "alice-public", "lensing-team"]
    assert names(_svc(url, bob_token)) == ["alice-public", "lensing-team"]
    assert names(_svc(url)) == ["alice-public"]  # anonymous
    job = _svc(url, alice_token).submit_job(query, maxrec=100)
    assert job.url.startswith(f"{url}/async/")  # the hub's address, not DaCHS's
    job.run().wait(phases=["COMPLETED", "ERROR"], timeout=120)
    assert job.phase == "COMPLETED"
    for token in (bob_token, None):
        headers = {"Authorization": f"token {token}"} if token else {}
        for method, path in (("GET", "/results/result"), ("GET", ""), ("DELETE", "")):
            r = requests.request(method, job.url + path, headers=headers, timeout=30)
            assert r.status_code == 401, (token is None, method, path, r.status_code)
    assert len(job.fetch_result().to_table()) == 3
    # the job list: a user's own jobs; anonymous listing (everyone's job ids) is refused
    listed = requests.get(
        f"{url}/async", headers={"Authorization": f"token {bob_token}"}, timeout=30
    )
    assert listed.status_code == 200 and job.job_id not in listed.text
    anonymous = requests.get(f"{url}/async", timeout=30)
    assert anonymous.status_code == 401 and "hub token" in anonymous.text
    job.delete()
    with pytest.raises(pyvo.dal.DALServiceError):
        _ = job.phase


def test_a_user_holds_only_so_many_unfinished_async_jobs(platform):
    """DaCHS runs a few jobs at once for everybody: one user may not fill its queue."""
    hub, _, url = platform
    query = "SELECT TOP 1 obs_id FROM ivoa.obscore"
    dave, carol = _svc(url, hub.token("dave")), _svc(url, hub.token("carol"))
    held = [dave.submit_job(query) for _ in range(2)]  # pending: not run yet, still held
    try:
        with pytest.raises(pyvo.dal.DALRateLimitError):
            dave.submit_job(query)
        raw = requests.post(
            f"{url}/async",
            data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query},
            headers={"Authorization": f"token {hub.token('dave')}"},
            timeout=30,
            allow_redirects=False,
        )
        assert raw.status_code == 429 and raw.headers["Retry-After"] == "30"
        message = raw.json()["message"]
        assert "limit is 2" in message and all(j.job_id in message for j in held), message
        assert len(carol.run_async(query).to_table()) == 1  # others are not held up
        held.pop().delete()
        extra = dave.submit_job(query)  # room again
        held.append(extra)
        extra.run().wait(phases=["COMPLETED", "ERROR"], timeout=120)
        assert extra.phase == "COMPLETED"
        held.append(dave.submit_job(query))  # a finished job does not count
    finally:
        for job in held:
            job.delete()


def test_publishing_registers_the_authenticated_user_as_owner(platform, tmp_path, monkeypatch):
    import astropy.units as u
    from astropy.table import QTable

    from platform_lib.data.l5 import did, publish, remove
    from platform_lib.data.tap_client import HubTapRegistry, TapClientError

    hub, service, url = platform
    alice_token = hub.token("alice")
    monkeypatch.setenv("ROMAN_TEAM_STORE_URL", str(tmp_path / "teams") + "/")
    monkeypatch.setenv("ROMAN_USER_STORE_URL", str(tmp_path / "users" / "alice") + "/")
    cat = QTable({"ra": [RA] * u.deg, "dec": [DEC] * u.deg, "flux": [1.0] * u.uJy})
    schema = {"ra": "deg", "dec": "deg", "flux": "uJy"}
    alice_reg = HubTapRegistry(url, alice_token)

    # a forged owner: the notebook claims to be bob with alice's token
    monkeypatch.setenv("JUPYTERHUB_USER", "bob")
    with pytest.raises(TapClientError, match=r"403.*cannot be claimed"):
        publish(cat, "forged", licence="CC-BY-4.0", schema=schema, registry=alice_reg)
    assert not list((tmp_path / "users").rglob("forged*"))  # nothing half-written
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    # a team alice is not in
    monkeypatch.setenv("ROMAN_TEAM_STORE_URL", str(tmp_path / "teams") + "/")
    with pytest.raises(TapClientError, match="not a member of team 'transients'"):
        publish(
            cat,
            "intrude",
            licence="CC-BY-4.0",
            schema=schema,
            visibility="team",
            team="transients",
            registry=alice_reg,
        )
    assert not list((tmp_path / "teams").rglob("intrude*"))

    out = publish(
        cat,
        "lens-cands",
        licence="CC-BY-4.0",
        schema=schema,
        visibility="team",
        team="lensing",
        registry=alice_reg,
    )
    query = (
        f"SELECT owner_name, team FROM roman.products WHERE obs_publisher_did = '{did(out.url)}'"
    )
    seen = _svc(url, hub.token("bob")).search(query).to_table()
    assert list(seen["owner_name"]) == ["alice"] and seen["team"][0] == "lensing"
    assert len(_svc(url, hub.token("carol")).search(query)) == 0
    assert len(_svc(url).search(query)) == 0
    # a row sent by hand, owner left out: the service fills in the token's user
    row = _row("bob/l5/by-hand_cat.parquet", "L5", "private", None, None)
    HubTapRegistry(url, hub.token("bob")).add_product(row)
    with service.connect() as conn:
        owner = conn.execute(
            "SELECT owner_name FROM roman.products WHERE obs_publisher_did = %s",
            (row["obs_publisher_did"],),
        ).fetchone()
    assert owner == ("bob",)
    # bob may not put rows into alice's space, nor survey rows, nor overwrite
    for bad, words in (
        (_row("alice/l5/squat_cat.parquet", "L5", "private"), "not in bob's own space"),
        (_row("L2/fake_cal.asdf", "L2"), "only L5"),
        (row, "already published"),
    ):
        with pytest.raises(TapClientError, match=words):
            HubTapRegistry(url, hub.token("bob")).add_product(bad)
    # removal: not by a team-mate, by the owner, recorded
    with pytest.raises(TapClientError, match="belongs to alice"):
        HubTapRegistry(url, hub.token("bob")).remove_product(did(out.url))
    with pytest.raises(TapClientError, match=r"401"):
        requests_reg = HubTapRegistry(url, "x")
        requests_reg.remove_product(did(out.url))
    remove(out, registry=alice_reg, reason="retracted")
    assert len(_svc(url, hub.token("bob")).search(query)) == 0
    with service.connect() as conn:
        rec = conn.execute(
            "SELECT owner_name, removed_by, reason FROM roman.removals "
            "WHERE obs_publisher_did = %s",
            (did(out.url),),
        ).fetchall()
    assert rec == [("alice", "alice", "retracted")]


def test_the_local_platform_routes_users_through_the_hub(tmp_path):
    """With hub settings, tap_component hands users the hub's TAP address and the hub its service."""
    from types import SimpleNamespace

    from hub_config.local.state import StateDir
    from hub_config.local.tap_platform import tap_component

    state = StateDir(tmp_path / "state")
    state.create()
    settings = SimpleNamespace(hub=SimpleNamespace(public_url="http://127.0.0.1:8000/"))
    p = SimpleNamespace(
        config=SimpleNamespace(data=SimpleNamespace(tap=True)),
        state=state,
        user_env={},
        settings=settings,
    )
    component = tap_component(p)
    assert p.user_env["ROMAN_TAP_URL"] == "http://127.0.0.1:8000/services/tap"
    env = settings.tap["environment"]
    assert env["ROMAN_TAP_PORT"] == str(component.service.port)
    assert env["ROMAN_TAP_SECRET"] == component.service.secret
    assert "ROMAN_TAP_SECRET" not in p.user_env  # users never get the platform's TAP secret
