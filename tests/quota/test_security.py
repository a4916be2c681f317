"""Every forbidden action is refused and every bad input gets 400 + reason, changing nothing.

Runs against the real local platform: hub login, HubOAuth/API tokens, the hub-managed service.
"""

from __future__ import annotations

import datetime as dt

import pytest
import requests


@pytest.fixture(scope="module")
def teams(quota_platform):
    qp = quota_platform
    for name in ("lens", "sn"):
        r = qp.api("admin", "POST", "api/teams", json={"name": name, "description": f"team {name}"})
        assert r.status_code == 201, r.text
    for team, user, role in [
        ("lens", "alice", "admin"),
        ("lens", "bob", "member"),
        ("sn", "frank", "admin"),
    ]:
        r = qp.api(
            "admin", "POST", f"api/teams/{team}/members", json={"username": user, "role": role}
        )
        assert r.status_code == 201, r.text
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    r = qp.api(
        "admin",
        "POST",
        "api/allocations",
        json={"team": "lens", "core_hours": 100, "period_end": end},
    )
    assert r.status_code == 201, r.text
    return qp


def audit_len(qp) -> int:
    r = qp.api("admin", "GET", "api/audit", params={"limit": 5000})
    assert r.status_code == 200
    return len(r.json())


def snapshot(qp) -> tuple:
    return (
        audit_len(qp),
        qp.api("admin", "GET", "api/teams/lens").json(),
        qp.api("admin", "GET", "api/teams/sn").json(),
    )


def test_team_admin_groups_follow_the_quota_database(teams):
    groups = set(teams.hub("admin", "GET", "users/alice").json()["groups"])
    assert {"team-lens", "team-lens-admins"} <= groups
    assert "team-lens" in teams.hub("admin", "GET", "users/bob").json()["groups"]


FORBIDDEN = [
    # (who, method, path, body, why)
    ("alice", "GET", "api/teams/sn", None, "not a member"),
    ("alice", "POST", "api/teams/sn/members", {"username": "carol"}, "not an admin"),
    ("alice", "PUT", "api/teams/sn/members/frank/cap", {"core_hours": 1}, "not an admin"),
    ("alice", "PUT", "api/teams/lens/members/alice/cap", {"core_hours": 1e6}, "own cap"),
    (
        "alice",
        "POST",
        "api/teams/lens/members",
        {"username": "carol", "role": "admin"},
        "platform admins",
    ),
    ("alice", "POST", "api/teams", {"name": "mine"}, "platform admins"),
    ("alice", "PUT", "api/tiers/alice", {"tier": "consortium"}, "platform admins"),
    (
        "alice",
        "POST",
        "api/allocations",
        {"user": "alice", "core_hours": 1e6, "period_end": "2099-01-01"},
        "platform admins",
    ),
    ("alice", "GET", "api/usage", None, "platform admins"),
    ("alice", "GET", "api/audit", None, "platform admins"),
    ("bob", "POST", "api/teams/lens/members", {"username": "carol"}, "not an admin"),
    ("bob", "PUT", "api/teams/lens/members/bob/cap", {"core_hours": 1e6}, "not an admin"),
    ("bob", "DELETE", "api/teams/lens/members/alice", None, "not an admin"),
    (
        "bob",
        "POST",
        "api/requests",
        {"kind": "renewal", "team": "lens", "justification": "x"},
        "not an admin",
    ),
    ("frank", "DELETE", "api/teams/lens/members/bob", None, "not an admin"),
    ("alice", "DELETE", "api/tiers/bob", None, "platform admins"),
]


@pytest.mark.parametrize("who,method,path,body,why", FORBIDDEN)
def test_forbidden_actions_are_refused_and_change_nothing(teams, who, method, path, body, why):
    before = snapshot(teams)
    r = teams.api(who, method, path, json=body)
    assert r.status_code == 403, (r.status_code, r.text)
    assert why in r.json()["reason"]
    assert snapshot(teams) == before


BAD = [
    (
        "POST",
        "api/allocations",
        {"user": "bob", "core_hours": -5, "period_end": "2099-01-01"},
        "greater than or equal to 0",
    ),
    (
        "POST",
        "api/allocations",
        {"team": "lens", "core_hours": 5, "period_start": "2030-01-02", "period_end": "2030-01-01"},
        "after period_start",
    ),
    (
        "POST",
        "api/allocations",
        {"user": "bob", "team": "lens", "core_hours": 5, "period_end": "2099-01-01"},
        "exactly one",
    ),
    ("POST", "api/teams/lens/members", {"username": "nobody-here"}, "unknown user"),
    ("PUT", "api/tiers/nobody-here", {"tier": "research"}, "unknown user"),
    ("PUT", "api/tiers/bob", {"tier": "galactic"}, "unknown tier"),
    ("POST", "api/teams", {"name": "x" * 500}, "at most 41"),
    (
        "POST",
        "api/requests",
        {"kind": "tier", "tier": "research", "justification": "j" * 5000},
        "at most 4000",
    ),
    ("PUT", "api/teams/lens/members/bob/cap", {"core_hours": -1}, "greater than or equal to 0"),
    ("PUT", "api/teams/lens/members/bob/cap", {"core_hours": "lots"}, "valid number"),
    ("POST", "api/teams/lens/members", {"username": "carol", "sneaky": 1}, "Extra inputs"),
    ("POST", "api/teams", "{not json", "malformed JSON"),
    ("POST", "api/teams", "[1, 2]", "JSON object"),
]


@pytest.mark.parametrize("method,path,body,reason", BAD)
def test_bad_input_is_400_with_a_reason_and_changes_nothing(teams, method, path, body, reason):
    before = snapshot(teams)
    kw = {"data": body} if isinstance(body, str) else {"json": body}
    r = teams.api("admin", method, path, **kw)
    assert r.status_code == 400, (r.status_code, r.text)
    assert reason in r.json()["reason"], r.json()
    assert snapshot(teams) == before


def test_oversized_body_is_refused(teams):
    before = snapshot(teams)
    r = teams.api("admin", "POST", "api/teams", data=b'{"name": "' + b"a" * 400_000 + b'"}')
    assert r.status_code == 400 and "larger than" in r.json()["reason"]
    assert snapshot(teams) == before


def test_unauthenticated_and_cookie_without_xsrf_are_refused(teams):
    assert requests.get(teams.quota + "api/me", timeout=30).status_code == 403
    s = teams.login("admin")
    page = s.get(teams.quota + "admin", timeout=30)  # OAuth through the hub, cookie set
    assert page.status_code == 200 and "Platform admin" in page.text
    before = snapshot(teams)
    r = s.post(
        teams.quota + "forms/create-team",
        data={"name": "csrf", "back": "/"},
        timeout=30,
        allow_redirects=False,
    )
    assert r.status_code == 403
    r = s.post(teams.quota + "api/teams", json={"name": "csrf"}, timeout=30)
    assert r.status_code == 403
    assert snapshot(teams) == before


def test_changes_are_audited_with_before_and_after(teams):
    r = teams.api("alice", "PUT", "api/teams/lens/members/bob/cap", json={"core_hours": 7.5})
    assert r.status_code == 200, r.text
    r = teams.api("alice", "PUT", "api/teams/lens/members/bob/cap", json={"core_hours": 3})
    entry = teams.api("admin", "GET", "api/audit", params={"limit": 1}).json()[0]
    assert entry["actor"] == "alice" and entry["action"] == "set_cap"
    assert entry["target"] == "team:lens/user:bob"
    assert entry["before"]["cap_core_hours"] == 7.5 and entry["after"]["cap_core_hours"] == 3
    # the member sees the team but no admin data
    view = teams.api("bob", "GET", "api/teams/lens").json()
    assert view["can_admin"] is False and "members" not in view


def test_tier_request_approval_updates_the_hub_group_and_is_visible(teams):
    r = teams.api(
        "carol",
        "POST",
        "api/requests",
        json={"kind": "tier", "tier": "research", "justification": "a research program"},
    )
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert (
        teams.api(
            "carol", "POST", f"api/requests/{rid}/decision", json={"approve": True}
        ).status_code
        == 403
    )
    r = teams.api(
        "admin", "POST", f"api/requests/{rid}/decision", json={"approve": True, "note": "ok"}
    )
    assert r.status_code == 200 and r.json()["state"] == "approved"
    assert "tier-research" in teams.hub("admin", "GET", "users/carol").json()["groups"]
    mine = teams.api("carol", "GET", "api/requests").json()
    assert mine[0]["state"] == "approved" and mine[0]["decided_by"] == "admin"
    assert teams.api("carol", "GET", "api/me").json()["tier"] == "research"
    # a decided request cannot be decided again
    assert (
        teams.api(
            "admin", "POST", f"api/requests/{rid}/decision", json={"approve": False}
        ).status_code
        == 409
    )


def test_renewal_flow_and_csv_export(teams):
    r = teams.api(
        "alice",
        "POST",
        "api/requests",
        json={"kind": "renewal", "team": "lens", "justification": "next survey season"},
    )
    assert r.status_code == 201, r.text
    assert (
        teams.api("alice", "GET", "api/teams/lens").json()["allocation"]["state"]
        == "renewal_requested"
    )
    rid = r.json()["id"]
    r = teams.api("admin", "POST", f"api/requests/{rid}/decision", json={"approve": True})
    assert r.status_code == 200
    team_reqs = teams.api("alice", "GET", "api/teams/lens").json()["requests"]
    assert team_reqs[0]["state"] == "approved"
    csv = teams.api("admin", "GET", "api/usage.csv")
    assert csv.status_code == 200 and csv.text.splitlines()[0] == "user,team,core_hours,gpu_hours"
    assert teams.api("alice", "GET", "api/usage.csv").status_code == 403
