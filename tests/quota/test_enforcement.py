"""Enforcement: exhausted / expired allocations refuse spawns and clusters with a clear message;
team choice is validated on the server side; the grace-period stop on the real platform."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from hub_config.quota import services as ops
from hub_config.quota.errors import BadInput, QuotaExceeded
from hub_config.quota.services import enforcement, ledger
from hub_config.quota.settings import QuotaSettings
from hub_config.quota.storage.models import utcnow

ADMIN = ops.Actor("root", platform_admin=True)


@pytest.fixture
def world(sessions, db_url):
    """lens (100 core-h, alice capped at 1), old (expired), gpu-less personal allocation for bob."""
    now = utcnow()
    with sessions() as s:
        for n in ("alice", "bob", "carol"):
            ops.user(s, n, create=True)
        ops.create_team(s, ADMIN, "lens")
        ops.create_team(s, ADMIN, "old")
        ops.add_member(s, ADMIN, "lens", "alice")
        ops.add_member(s, ADMIN, "old", "alice")
        ops.set_cap(s, ADMIN, "lens", "alice", core_hours=1.0)
        day = now - dt.timedelta(days=1)
        ops.create_allocation(
            s,
            ADMIN,
            team_name="lens",
            core_hours=100,
            period_start=day,
            period_end=now + dt.timedelta(days=10),
        )
        ops.create_allocation(
            s,
            ADMIN,
            team_name="old",
            core_hours=100,
            period_start=now - dt.timedelta(days=20),
            period_end=now - dt.timedelta(days=1),
        )
        ops.create_allocation(
            s,
            ADMIN,
            user_name="bob",
            core_hours=2,
            gpu_hours=0,
            period_start=day,
            period_end=now + dt.timedelta(days=10),
        )
        s.commit()
    return QuotaSettings(db_url=db_url)


def use(sessions, user, team, core_hours, gpus=0.0):
    """Put ``core_hours`` of past use in the ledger (as the sampler would)."""
    now = utcnow()
    item = ledger.Running(
        key=f"hub:{user}/{team}",
        kind="server",
        username=user,
        team=team,
        cores=1.0,
        gpus=gpus,
        started=None,
    )
    with sessions() as s:
        ledger.charge(s, item, now - dt.timedelta(hours=core_hours), now)
        s.commit()


def test_spawn_allowed_then_refused_when_personal_allocation_is_exhausted(sessions, world):
    c = enforcement.check_spawn("bob", "small", settings=world)
    assert c.team is None and c.allocation_id is not None
    use(sessions, "bob", None, 2.5)
    with pytest.raises(
        QuotaExceeded,
        match=r"server start refused: your personal allocation is exhausted \(2\.5 of 2 core-hours",
    ):
        enforcement.check_spawn("bob", "small", settings=world)
    with pytest.raises(
        QuotaExceeded, match="Dask cluster refused: your personal allocation is exhausted"
    ):
        enforcement.check_cluster("bob", settings=world)


def test_gpu_profile_needs_gpu_hours(world):
    with pytest.raises(QuotaExceeded, match="no GPU-hours left"):
        enforcement.check_spawn("bob", "gpu", settings=world)


def test_expired_team_allocation_refuses(world):
    with pytest.raises(
        QuotaExceeded, match=r"team 'old'.s allocation expired on .* request a renewal"
    ):
        enforcement.check_spawn("alice", "small", team="old", settings=world)
    with pytest.raises(QuotaExceeded, match="expired"):
        enforcement.check_cluster("alice", team="old", settings=world)


def test_team_choice_is_validated_server_side(world):
    assert enforcement.check_spawn("alice", "small", team="lens", settings=world).team == "lens"
    with pytest.raises(BadInput, match="not a member of team 'lens'"):
        enforcement.check_spawn("bob", "small", team="lens", settings=world)
    with pytest.raises(BadInput, match="there is no team 'nope'"):
        enforcement.check_spawn("alice", "small", team="nope", settings=world)
    with pytest.raises(BadInput, match="invalid team name"):
        enforcement.check_spawn("alice", "small", team="../etc", settings=world)
    with pytest.raises(BadInput, match="unknown profile"):
        enforcement.check_spawn("alice", "huge", team="lens", settings=world)


def test_idp_team_group_joins_the_team(world, sessions):
    c = enforcement.check_spawn(
        "carol", "small", team="lens", hub_groups=["team-lens", "team-lens-admins"], settings=world
    )
    assert c.team == "lens"
    with sessions() as s:
        m = ops.membership(s, ops.team(s, "lens"), "carol")
        assert m is not None and m.role.value == "admin"


def test_member_cap_inside_team_allocation(sessions, world):
    use(sessions, "alice", "lens", 1.2)
    with pytest.raises(
        QuotaExceeded, match=r"you reached your cap in team 'lens' \(1\.2 of 1 core-hours"
    ):
        enforcement.check_spawn("alice", "small", team="lens", settings=world)
    # her personal base allocation is untouched by team use
    assert enforcement.check_spawn("alice", "small", settings=world).team is None


def test_grace_enforcer_warns_then_stops_and_clears(sessions, world):
    stopped: list = []
    e = enforcement.GraceEnforcer(
        sessions,
        world.model_copy(update={"grace_period_s": 60}),
        stop_server=lambda u, n: stopped.append((u, n)),
        stop_cluster=lambda u, c: stopped.append((u, c)),
    )
    now = utcnow()
    with sessions() as s:  # bob runs a server and a cluster on his personal allocation
        ledger.integrate(
            s, "hub", [ledger.Running("hub:bob/", "server", "bob", None, 1, 0, now)], now, 1
        )
        ledger.integrate(
            s,
            "gateway",
            [ledger.Running("gateway:c1:w1", "worker", "bob", None, 1, 0, now)],
            now,
            1,
        )
        s.commit()
    assert e.run_once(now) == []
    use(sessions, "bob", None, 3)
    assert e.run_once(now) == ["warned bob/None"]
    assert e.run_once(now + dt.timedelta(seconds=30)) == [] and stopped == []
    done = e.run_once(now + dt.timedelta(seconds=61))
    assert ("bob", "") in stopped and ("bob", "c1") in stopped, done
    with sessions() as s:
        assert ops.me(s, ops.Actor("bob"), world)["warnings"][0]["stopped_at"] is not None


# --------------------------------------------------------------------------- real platform
def test_grace_period_stop_on_the_platform_leaves_home_untouched(quota_platform):
    qp = quota_platform
    now = dt.datetime.now(dt.UTC)
    r = qp.api(
        "admin",
        "POST",
        "api/allocations",
        json={
            "user": "erin",
            "core_hours": 1,
            "period_end": (now + dt.timedelta(days=30)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    assert qp.api("erin", "POST", "api/check/spawn", json={"profile": "small"}).status_code == 200
    assert qp.hub("erin", "POST", "users/erin/server", json={"profile": "small"}).status_code in (
        201,
        202,
    )
    qp.wait(
        lambda: qp.hub("admin", "GET", "users/erin").json()["servers"].get("", {}).get("ready"),
        300,
        "erin's server",
    )
    # the next period's allocation is tiny: 0.0001 core-h is used up in under a second at 0.5 cores
    r = qp.api(
        "admin",
        "POST",
        "api/allocations",
        json={
            "user": "erin",
            "core_hours": 0.0001,
            "period_end": (now + dt.timedelta(days=60)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    home = qp.state / "users" / "erin"
    marker = home / "keep-me.txt"
    marker.write_text("precious")
    warned = qp.wait(
        lambda: qp.api("erin", "GET", "api/me").json()["warnings"], 60, "the exhaustion warning"
    )
    assert "exhausted" in warned[0]["reason"]
    t_warn = time.monotonic()
    qp.wait(
        lambda: "" not in qp.hub("admin", "GET", "users/erin").json()["servers"],
        90,
        "the grace stop",
    )
    assert time.monotonic() - t_warn >= 4.0 - 1.5  # not before the grace period (4 s) is over
    assert marker.read_text() == "precious"
    # and a new spawn is refused by the service's check with the reason
    r = qp.api("erin", "POST", "api/check/spawn", json={"profile": "small"})
    assert r.status_code == 403 and "exhausted" in r.json()["reason"]
    audit = qp.api("admin", "GET", "api/audit", params={"limit": 50}).json()
    assert any(e["action"] == "grace_stop" and e["target"] == "user:erin" for e in audit)
    # the hub's spawner refuses a new server, and the gateway a new cluster, with the reason
    r = qp.hub("erin", "POST", "users/erin/server", json={"profile": "small"})
    assert r.status_code == 403 and "your personal allocation is exhausted" in r.text, r.text
    assert "" not in qp.hub("admin", "GET", "users/erin").json()["servers"]
    from dask_gateway import Gateway
    from dask_gateway.auth import JupyterHubAuth

    gw = qp.settings["gateway"]
    gateway = Gateway(
        address=gw["address"],
        proxy_address=gw["proxy_address"],
        auth=JupyterHubAuth(api_token=qp.token("erin")),
    )
    with pytest.raises(
        Exception, match="Dask cluster refused: your personal allocation is exhausted"
    ):
        gateway.new_cluster()
    gateway.close()
