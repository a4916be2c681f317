"""The team admin flow in headless chromium, logged in through the platform's own login pages
(the ``browser_login`` fixture: the OIDC provider's sign-in form, or the hub's development form)."""

from __future__ import annotations

import datetime as dt

import pytest

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def deep_team(quota_platform):
    qp = quota_platform
    assert (
        qp.api(
            "admin", "POST", "api/teams", json={"name": "deep", "description": "deep fields"}
        ).status_code
        == 201
    )
    assert (
        qp.api(
            "admin", "POST", "api/teams/deep/members", json={"username": "gina", "role": "admin"}
        ).status_code
        == 201
    )
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=5)).isoformat()
    r = qp.api(
        "admin",
        "POST",
        "api/allocations",
        json={"team": "deep", "core_hours": 50, "period_start": start, "period_end": end},
    )
    assert r.status_code == 201
    # earlier use by gina under the team, as the sampler records it
    from hub_config.quota.services import ledger
    from hub_config.quota.storage.db import session_factory
    from hub_config.quota.storage.models import utcnow

    sessions = session_factory(f"sqlite:///{qp.state / 'quota.sqlite'}", migrate=False)
    now = utcnow()
    with sessions() as s:
        item = ledger.Running("hub:gina/old", "server", "gina", "deep", 2.0, 0.0, None)
        ledger.charge(s, item, now - dt.timedelta(hours=3), now - dt.timedelta(minutes=30))
        s.commit()
    sessions.kw["bind"].dispose()
    return qp


def test_team_admin_adds_member_sets_cap_and_sees_the_plot(
    deep_team, browser, browser_login, docs_screenshot
):
    qp = deep_team
    ctx = browser.new_context()
    page = ctx.new_page()
    team_url = qp.quota + "teams/deep"
    browser_login(page, team_url, "gina", qp.helpers.DEMO_PASSWORD)
    assert page.locator("#admin-controls").is_visible()
    plot = page.locator("svg#usage-plot")
    assert plot.is_visible() and page.locator("svg#usage-plot polyline.usage-line").count() == 1
    docs_screenshot(page, "team-admin-team-page")  # docs/team-admin.md
    # hank asked to join (issue 20: a team admin grants a request or invites, never imposes)
    r = qp.api(
        "hank",
        "POST",
        "api/requests",
        json={"kind": "join", "team": "deep", "justification": "my deep-field survey"},
    )
    assert r.status_code == 201, r.text
    page.fill("#add-member input[name=username]", "hank")
    page.click("#add-member button[type=submit]")
    page.wait_for_url(team_url)
    row = page.locator('tr[data-member="hank"]')
    assert row.is_visible()
    row.locator("input[name=core_hours]").fill("12.5")
    row.locator("button", has_text="Set cap").click()
    page.wait_for_url(team_url)
    assert page.locator('tr[data-member="hank"] input[name=core_hours]').input_value() == "12.5"
    view = qp.api("admin", "GET", "api/teams/deep").json()
    assert {m["name"]: m["cap_core_hours"] for m in view["members"]} == {"gina": None, "hank": 12.5}
    docs_screenshot(page, "team-admin-member-cap")
    # the renewal request, from the team page; it waits for a platform admin
    page.fill("#renewal-form textarea[name=justification]", "second year of the deep survey")
    page.click("#renewal-form button[type=submit]")
    page.wait_for_url(team_url)
    mine = [r for r in qp.api("gina", "GET", "api/requests").json() if r["kind"] == "renewal"]
    assert [(r["team"], r["state"]) for r in mine] == [("deep", "pending")]
    cells = page.locator("#team-requests tr", has_text="gina").first.locator("td").all_inner_texts()
    assert cells[:3] == [str(mine[0]["id"]), "gina", "pending"]
    docs_screenshot(page, "team-admin-renewal-requested")
    # a bad value in the form gets a 400 page with the reason, and nothing changes
    row = page.locator('tr[data-member="hank"]')
    row.locator("input[name=core_hours]").evaluate(
        "e => { e.removeAttribute('min'); e.value = '-3'; }"
    )
    row.locator("button", has_text="Set cap").click()
    assert "greater than or equal to 0" in page.locator("#error-reason").inner_text()
    docs_screenshot(page, "team-admin-bad-cap")
    assert qp.api("admin", "GET", "api/teams/deep").json()["members"][1]["cap_core_hours"] == 12.5
    ctx.close()


def test_plain_member_sees_no_admin_controls(deep_team, browser, browser_login, docs_screenshot):
    qp = deep_team
    ctx = browser.new_context()
    page = ctx.new_page()
    team_url = qp.quota + "teams/deep"
    browser_login(page, team_url, "hank", qp.helpers.DEMO_PASSWORD)
    assert page.locator("h1").inner_text() == "Team deep"
    # the membership made in the service survived the login's group sync (hub group team-deep)
    assert "team-deep" in qp.hub("admin", "GET", "users/hank").json()["groups"]
    assert page.locator("svg#usage-plot").is_visible()
    assert page.locator("#admin-controls").count() == 0
    assert page.locator("#add-member").count() == 0 and page.locator(".cap-form").count() == 0
    assert page.locator("#nav-admin").count() == 0
    docs_screenshot(page, "team-member-view")
    # and the pages behind the controls refuse him on the server side
    r = page.request.get(qp.quota + "admin")
    assert r.status == 403
    page.goto(qp.quota)
    assert page.locator("#tier").inner_text() == "entry"
    docs_screenshot(page, "my-allocation")  # docs/getting-started.md
    ctx.close()


def test_platform_admin_approves_the_renewal_on_the_admin_page(
    deep_team, browser, browser_login, docs_screenshot
):
    qp = deep_team

    def gina_renewals():
        return [r for r in qp.api("gina", "GET", "api/requests").json() if r["kind"] == "renewal"]

    if not [r for r in gina_renewals() if r["state"] == "pending"]:  # this test run alone
        r = qp.api(
            "gina",
            "POST",
            "api/requests",
            json={"kind": "renewal", "team": "deep", "justification": "second year"},
        )
        assert r.status_code == 201, r.text
    (pending,) = [r for r in gina_renewals() if r["state"] == "pending"]
    assert qp.api("admin", "GET", "api/teams/deep").json()["allocation"]["state"] == (
        "renewal_requested"
    )
    ctx = browser.new_context()
    page = ctx.new_page()
    admin_url = qp.quota + "admin"
    browser_login(page, admin_url, "admin", qp.helpers.DEMO_PASSWORD)
    assert page.locator("h1").inner_text() == "Platform admin"
    row = page.locator("#pending tr", has=page.locator(f'input[value="{pending["id"]}"]'))
    assert row.count() == 1
    cells = row.locator("td").all_inner_texts()
    assert cells[1] == "gina" and cells[2].split() == ["renewal", "deep"]
    row.locator("input[name=note]").fill("for year 2")
    docs_screenshot(page, "platform-admin-requests", full_page=False)  # docs/team-admin.md
    row.locator("button", has_text="Approve").click()
    page.wait_for_url(admin_url)
    (decided,) = [r for r in gina_renewals() if r["id"] == pending["id"]]
    assert (decided["state"], decided["decided_by"], decided["note"]) == (
        "approved",
        "admin",
        "for year 2",
    )
    # the current period is active again; the next one (same size) starts when it ends
    assert qp.api("admin", "GET", "api/teams/deep").json()["allocation"]["state"] == "active"
    assert (
        page.locator("#pending tr", has=page.locator(f'input[value="{pending["id"]}"]')).count()
        == 0
    )
    ctx.close()
