"""Accounting on the real platform: servers and Dask clusters charged against known run times,
with the quota service (and with it the sampler) killed mid-run and restarted by the hub."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import time

import pytest
import requests

COST_SMALL = 0.5  # cores the policy's 'small' profile reserves (hub_config/policy.yaml)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def parse(ts: str) -> dt.datetime:
    return (
        dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(dt.UTC).replace(tzinfo=None)
    )


def charged(qp, user: str) -> float:
    rows = qp.api("admin", "GET", "api/usage").json()
    return sum(r["core_hours"] for r in rows if r["user"] == user)


def kill_quota_service(qp) -> None:
    """SIGKILL the service (no chance to tidy up); the hub restarts managed services."""
    old = qp.quota_service_pids()
    assert old, "quota service process not found"
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    # the hub polls its managed services every 30 s and restarts one that exited
    qp.wait(
        lambda: set(qp.quota_service_pids()) - set(old),
        90,
        "the hub to restart the service",
        every=0.5,
    )


@pytest.mark.browser
def test_server_run_time_is_charged_once_across_a_service_kill(
    quota_platform, browser, browser_login, docs_screenshot
):
    qp = quota_platform
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    for team in ("acct", "acct-other"):
        assert qp.api("admin", "POST", "api/teams", json={"name": team}).status_code == 201
        r = qp.api(
            "admin",
            "POST",
            "api/allocations",
            json={"team": team, "core_hours": 10, "period_start": start, "period_end": end},
        )
        assert r.status_code == 201, r.text
    assert (
        qp.api("admin", "POST", "api/teams/acct/members", json={"username": "carol"}).status_code
        == 201
    )
    # the team to charge is validated by the hub's spawner: not a member -> refused, nothing starts
    r = qp.hub(
        "carol", "POST", "users/carol/server", json={"profile": "small", "team": "acct-other"}
    )
    assert r.status_code == 403 and "not a member of team 'acct-other'" in r.text, r.text
    assert "" not in qp.hub("admin", "GET", "users/carol").json()["servers"]
    r = qp.hub("carol", "POST", "users/carol/server", json={"profile": "small", "team": "acct"})
    assert r.status_code in (201, 202), r.text
    model = qp.wait(
        lambda: (
            (m := qp.hub("admin", "GET", "users/carol").json())["servers"].get("", {}).get("ready")
            and m
        ),
        300,
        "carol's server",
    )
    started = parse(model["servers"][""]["started"])
    # inside the server: the account extension asks the service with the server's own token
    r = requests.get(
        f"{qp.url}/user/carol/roman/account.json",
        timeout=60,
        headers={"Authorization": f"token {qp.token('carol')}"},
    )
    assert r.status_code == 200, r.text[:300]
    assert r.json()["name"] == "carol" and r.json()["remaining_core_hours"] > 0
    page = requests.get(
        f"{qp.url}/user/carol/roman/account",
        timeout=60,
        headers={"Authorization": f"token {qp.token('carol')}"},
    )
    assert 'id="roman-tier"' in page.text
    # and in JupyterLab's status bar (the prebuilt extension), while the server runs
    ctx = browser.new_context()
    try:
        lab = ctx.new_page()
        browser_login(lab, f"{qp.url}/user/carol/lab", "carol", qp.helpers.DEMO_PASSWORD)
        item = lab.locator("#roman-account-status")
        item.wait_for(timeout=120_000)
        lab.wait_for_function(
            "() => document.querySelector('#roman-account-status').textContent.startsWith('Roman entry')",
            timeout=60_000,
        )
        assert "core-h left" in item.inner_text() and "renews" in item.inner_text()
        assert item.get_attribute("href") == qp.quota
        docs_screenshot(lab, "jupyterlab-status-bar", full_page=False)  # docs/getting-started.md
    finally:
        ctx.close()
    kill_quota_service(qp)  # sampler down for the service's restart (a few seconds)
    qp.wait(
        lambda: requests.get(qp.quota + "api/openapi.json", timeout=5).status_code == 200,
        60,
        "service back",
    )
    time.sleep(4)
    assert qp.hub("carol", "DELETE", "users/carol/server").status_code in (202, 204)
    qp.wait(
        lambda: "" not in qp.hub("admin", "GET", "users/carol").json()["servers"], 60, "server stop"
    )
    gone = utcnow()
    time.sleep(3 * 1.0)  # let the sampler see it gone
    expected = COST_SMALL * (gone - started).total_seconds() / 3600
    got = charged(qp, "carol")
    tolerance = COST_SMALL * 1.5 / 3600  # one sampling step (1 s) plus the polling above
    assert abs(got - expected) <= tolerance, (got, expected, (got - expected) * 3600 / COST_SMALL)
    # nothing more accrues once it is gone
    time.sleep(2)
    assert charged(qp, "carol") == got
    # all of it was charged to the team chosen at spawn, and shows as carol's use in the team
    # (the refused spawn may have been sighted while the hub was checking it: that instant is
    # charged to carol personally, never to the team she is not in)
    rows = {
        r["team"]: r["core_hours"]
        for r in qp.api("admin", "GET", "api/usage").json()
        if r["user"] == "carol"
    }
    assert set(rows) <= {"acct", None} and rows.get(None, 0) <= COST_SMALL * 1.0 / 3600
    members = qp.api("admin", "GET", "api/teams/acct").json()["members"]
    assert (
        members[0]["name"] == "carol" and abs(members[0]["used_core_hours"] - rows["acct"]) < 1e-9
    )


def _charged_key(qp, key: str, *, prefix: bool = False) -> float:
    """Core-hours the ledger holds for one key, or for every key starting with ``key`` (read
    from the quota database itself, so another test's use by the same user cannot count)."""
    where = "substr(key, 1, length(:key)) = :key" if prefix else "key = :key"
    with sqlite3.connect(qp.state / "quota.sqlite") as con:
        return con.execute(
            f"SELECT COALESCE(SUM(core_hours), 0) FROM usage WHERE {where}", {"key": key}
        ).fetchone()[0]


def test_crashed_server_is_charged_to_its_last_sighting(quota_platform):
    """kill -9 of a user's server: the hub says it is running until its spawner's next poll
    (30 s); the ledger must stop charging at its last sighting, within one sampling step."""
    import psutil

    qp = quota_platform
    user = "dave"
    r = qp.hub(user, "POST", f"users/{user}/server", json={"profile": "small"})
    assert r.status_code in (201, 202), r.text
    model = qp.wait(
        lambda: (
            (m := qp.hub("admin", "GET", f"users/{user}").json())["servers"]
            .get("", {})
            .get("ready")
            and m
        ),
        300,
        f"{user}'s server",
    )
    server = model["servers"][""]
    started = parse(server["started"])
    pid = server["state"]["pid"]  # the admin reads the spawner's state, as the sampler does
    proc = psutil.Process(pid)
    time.sleep(3)
    proc.kill()  # the crash; the process watcher's truth is the moment it is gone

    def dead() -> bool:  # gone, or a zombie its parent (the hub) has not reaped yet
        try:
            return proc.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    qp.wait(dead, 10, f"{user}'s server to die", every=0.05)
    died = utcnow()
    # the hub still lists it as ready until its poll notices; wait for that, then a few steps
    qp.wait(
        lambda: "" not in qp.hub("admin", "GET", f"users/{user}").json()["servers"],
        120,
        "the hub to notice the dead server",
        every=1.0,
    )
    noticed = utcnow()
    time.sleep(3)
    truth = COST_SMALL * (died - started).total_seconds() / 3600
    got = _charged_key(qp, f"hub:{user}/")
    step = 1.0  # the platform's sampling interval (tests/quota/conftest.py SAMPLE_S)
    print(
        json.dumps(
            {
                "charged_core_s": round(got * 3600, 2),
                "true_core_s": round(truth * 3600, 2),
                "hub_noticed_after_s": round((noticed - died).total_seconds(), 1),
            }
        )
    )
    # within a sampling step of the death (plus the moment between the kill and `died`): the
    # last sighting can be up to one step before it, and a pass can take as long again on a
    # loaded 2-core CI machine (seen: one failure in ~10 runs at one step); before: charged
    # until the hub noticed, up to its 30 s poll later (+11 s here)
    assert truth - COST_SMALL * 2 * step / 3600 <= got <= truth + COST_SMALL * 0.5 / 3600, (
        (got - truth) * 3600 / COST_SMALL
    )


def test_dask_gateway_cluster_is_charged_exactly(quota_platform):
    from dask_gateway import Gateway
    from dask_gateway.auth import JupyterHubAuth

    qp = quota_platform
    gw = qp.settings["gateway"]
    gateway = Gateway(
        address=gw["address"],
        proxy_address=gw["proxy_address"],
        auth=JupyterHubAuth(api_token=qp.token("dave")),
    )
    db = gw["db_url"].replace("sqlite:///", "")
    cluster = gateway.new_cluster()
    try:
        cluster.scale(1)
        qp.wait(
            lambda: (
                sqlite3.connect(db)
                .execute(
                    "SELECT count(*) FROM workers w JOIN clusters c ON w.cluster_id = c.id "
                    "WHERE c.name = ? AND w.status = 3",
                    (cluster.name,),
                )
                .fetchone()[0]
                == 1
            ),
            120,
            "a running worker",
        )
        time.sleep(4)
    finally:
        cluster.shutdown()
    qp.wait(
        lambda: (
            sqlite3.connect(db)
            .execute(
                "SELECT count(*) FROM clusters WHERE name = ? AND stop_time IS NOT NULL",
                (cluster.name,),
            )
            .fetchone()[0]
            == 1
        ),
        60,
        "the gateway to record the cluster's stop",
    )
    time.sleep(3)  # a few sampling steps
    con = sqlite3.connect(db)
    cfg, c_start, c_stop = con.execute(
        "SELECT config, start_time, stop_time FROM clusters WHERE name = ?", (cluster.name,)
    ).fetchone()
    cfg = json.loads(cfg)
    assert c_stop is not None
    truth = cfg.get("scheduler_cores", 1) * (c_stop - c_start) / 3.6e6
    for w_start, w_stop in con.execute(
        "SELECT w.start_time, w.stop_time FROM workers w JOIN clusters c ON w.cluster_id = c.id "
        "WHERE c.name = ?",
        (cluster.name,),
    ):
        assert w_stop is not None
        truth += cfg.get("worker_cores", 1) * (w_stop - w_start) / 3.6e6
    # this cluster's processes only: the user's other use (a server in another test) is not it
    got = _charged_key(qp, f"gateway:{cluster.name}:", prefix=True)
    assert truth > 0 and abs(got - truth) < 1e-6, (got, truth)


def test_home_storage_is_measured_and_shown(quota_platform):
    """The hub-managed service measures the local homes (its --homes-dir is the spawner's
    users folder) and shows each user their own use against their allocation."""
    import os

    qp = quota_platform
    home = qp.state / "users" / "gina"
    (home / "results").mkdir(parents=True, exist_ok=True)
    data = home / "results" / "mosaic.asdf"
    data.write_bytes(os.urandom(3_000_000))
    used_gb = os.stat(data).st_blocks * 512 / 1e9

    def storage():
        return qp.api("gina", "GET", "api/me").json().get("storage") or {}

    qp.wait(lambda: storage().get("files") == 1, 60, "a storage pass over gina's home")
    st = storage()
    assert abs(st["home_used_gb"] - used_gb) < 0.001 and st["complete"] is True
    assert (
        st["home_allocated_gb"] == qp.api("gina", "GET", "api/me").json()["allocation"]["home_gb"]
    )
    assert st["over_allocation"] is False
    page = qp.login("gina").get(qp.quota, timeout=30)
    assert page.status_code == 200 and 'id="home-used"' in page.text
