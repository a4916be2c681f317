"""Attacks on the quota service (issue 20, items 1 and 2) and what already held there."""

from __future__ import annotations

import concurrent.futures as cf
import time

import requests


def _service_session(qp, username: str) -> requests.Session:
    """A browser-like session with the quota service's own login cookie (OAuth via the hub)."""
    s = qp.login(username)
    r = s.get(qp.quota, timeout=30)
    assert r.status_code == 200 and r.url.startswith(qp.quota), (r.status_code, r.url)
    return s


def test_cookie_post_with_a_bogus_token_header_does_not_hang_the_service(quota_platform):
    """Attack 2: a cookie-authenticated POST carrying ``Authorization: token <bogus>`` used to
    dead-lock the service's one HubAuth thread and with it every other request."""
    qp = quota_platform
    s = _service_session(qp, "alice")
    with cf.ThreadPoolExecutor(4) as pool:
        attacks = [
            pool.submit(
                s.post,
                qp.quota + "api/requests",
                timeout=15,
                json={"kind": "tier", "tier": "research", "justification": "x"},
                headers={"Authorization": "token not-a-real-token"},
            )
            for _ in range(3)
        ]
        for f in attacks:
            r = f.result()  # a timeout here is the hang
            assert r.status_code == 403, (r.status_code, r.text)
    t0 = time.monotonic()
    r = qp.api("bob", "GET", "api/me")
    assert r.status_code == 200 and r.json()["name"] == "bob", r.text
    assert time.monotonic() - t0 < 10
    # The cookie alone, with the page's _xsrf token, still works afterwards.
    xsrf = s.cookies.get("_xsrf", path="/services/quota/") or s.cookies.get("_xsrf")
    r = s.get(qp.quota + "api/me", timeout=15)
    assert r.status_code == 200, r.text
    assert xsrf


def _idp_team_admin(qp) -> str:
    """The demo account ``teamadmin`` (IdP groups team:galaxies + team:galaxies:admin), logged
    in through the OIDC provider so the hub creates its role team-admin-galaxies, with the
    quota team 'galaxies' existing so the service records it as that team's admin. A hub token."""
    if "teamadmin" not in qp._tokens:
        r = qp.api(
            "admin", "POST", "api/teams", json={"name": "galaxies", "description": "attack 1"}
        )
        assert r.status_code in (201, 409), r.text
        s = requests.Session()
        qp.helpers.hub_login(s, qp.url, "teamadmin", "teamadmin-demo")
        qp._tokens["teamadmin"] = qp.helpers.api_token(s, qp.url, "teamadmin")
        me = qp.api("teamadmin", "GET", "api/me").json()
        assert {"name": "galaxies", "role": "admin"}.items() <= next(
            t for t in me["teams"] if t["name"] == "galaxies"
        ).items(), me
    return "teamadmin"


def _groups(qp, user: str) -> set[str]:
    return set(qp.hub("admin", "GET", f"users/{user}").json()["groups"])


def test_team_admin_cannot_impose_membership_and_take_over_servers(quota_platform):
    """Attack 1: a team admin added a platform admin (or anyone) to his team without consent,
    then read and stopped their servers through the hub role team-admin-<team>."""
    qp = quota_platform
    boss = _idp_team_admin(qp)
    for victim in ("admin", "erin"):
        r = qp.api(boss, "POST", "api/teams/galaxies/members", json={"username": victim})
        assert r.status_code == 202 and r.json()["invited"] == victim, r.text
        assert "team-galaxies" not in _groups(qp, victim)
        view = qp.api(boss, "GET", "api/teams/galaxies").json()
        assert victim not in {m["name"] for m in view["members"]}
        # the team admin's hub token has no power over the victim's server
        assert qp.hub(boss, "GET", f"users/{victim}").status_code in (403, 404)
        assert qp.hub(boss, "DELETE", f"users/{victim}/server").status_code in (403, 404)
        # nor can he accept the invitation on the victim's behalf
        rid = r.json()["request"]
        r = qp.api(boss, "POST", f"api/requests/{rid}/decision", json={"approve": True})
        assert r.status_code == 403, r.text
        assert "team-galaxies" not in _groups(qp, victim)
    # The invitee declines: nothing changes; a repeated decision is refused.
    mine = [x for x in qp.api("erin", "GET", "api/requests").json() if x["kind"] == "invite"]
    assert [x["team"] for x in mine] == ["galaxies"] and mine[0]["state"] == "pending"
    r = qp.api("erin", "POST", f"api/requests/{mine[0]['id']}/decision", json={"approve": False})
    assert r.status_code == 200 and r.json()["state"] == "declined"
    assert (
        qp.api(
            "erin", "POST", f"api/requests/{mine[0]['id']}/decision", json={"approve": True}
        ).status_code
        == 409
    )
    assert "team-galaxies" not in _groups(qp, "erin")


def test_membership_by_consent_gives_the_documented_power_only(quota_platform):
    """An accepted invitation or a granted join request makes a member; the team admin may then
    read and start/stop that member's server (docs/identity-and-tiers.md), nothing more."""
    qp = quota_platform
    boss = _idp_team_admin(qp)
    r = qp.api(boss, "POST", "api/teams/galaxies/members", json={"username": "frank"})
    rid = r.json()["request"]
    r = qp.api("frank", "POST", f"api/requests/{rid}/decision", json={"approve": True})
    assert r.status_code == 200 and r.json()["state"] == "approved", r.text
    assert "team-galaxies" in _groups(qp, "frank")
    # hank asks to join; a plain member cannot grant it, the team admin can
    r = qp.api(
        "hank",
        "POST",
        "api/requests",
        json={"kind": "join", "team": "galaxies", "justification": "same survey"},
    )
    assert r.status_code == 201, r.text
    assert (
        qp.api(
            "frank", "POST", f"api/requests/{r.json()['id']}/decision", json={"approve": True}
        ).status_code
        == 403
    )
    r2 = qp.api(boss, "POST", "api/teams/galaxies/members", json={"username": "hank"})
    assert r2.status_code == 201, r2.text
    assert "team-galaxies" in _groups(qp, "hank")
    assert qp.hub(boss, "GET", "users/frank").status_code == 200
    # no more than that: not a member's tokens, not a non-member, not group changes
    assert qp.hub(boss, "GET", "users/frank/tokens").status_code in (403, 404)
    assert qp.hub(boss, "POST", "users/frank/tokens", json={}).status_code in (403, 404)
    assert qp.hub(boss, "GET", "users/erin").status_code in (403, 404)
    assert qp.hub(
        boss, "POST", "groups/team-galaxies/users", json={"users": ["erin"]}
    ).status_code in (403, 404)
