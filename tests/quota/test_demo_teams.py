"""Issue 18: every team a demo account's spawn form offers exists, with an allocation.

The users file is the one ``roman-platform up`` writes for the development provider; each demo
account's hub groups come from the real authenticator's mapping (``update_auth_model``), the
form from the real spawner, and the refusal this used to be (``there is no team 'galaxies'``)
from the real server-side quota check.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
from types import SimpleNamespace

import pytest
import requests
import yaml
from jupyterhub.spawner import SimpleLocalProcessSpawner

from hub_config.auth import RomanOIDCAuthenticator
from hub_config.local.demo_teams import seed_demo_teams
from hub_config.local.oidc import users_document
from hub_config.oidc_dev.users import load_users
from hub_config.policy import load_policy
from hub_config.quota import services as ops
from hub_config.quota.errors import BadInput
from hub_config.quota.services.enforcement import check_spawn
from hub_config.quota.settings import QuotaSettings
from hub_config.spawner import TierLocalSpawnerMixin


class _Spawner(TierLocalSpawnerMixin, SimpleLocalProcessSpawner):
    pass


def _hub_groups(user) -> list[str]:
    auth = RomanOIDCAuthenticator()
    model = {"name": user.username, "auth_state": {auth.user_auth_state_key: user.claims()}}
    # In a thread of its own: a browser test earlier in the session leaves Playwright's loop
    # running in the main thread, where asyncio.run() is refused.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        state = pool.submit(asyncio.run, auth.update_auth_model(model)).result()
    return state["auth_state"]["roman"]["hub_groups"]


def _team_options(username: str, groups: list[str]) -> list[str]:
    user = SimpleNamespace(
        name=username,
        groups=[SimpleNamespace(name=g) for g in groups],
        spawners={},
        url=f"/user/{username}/",
        id=1,
    )
    form = _Spawner(user=user).render_profiles_form()
    select = re.search(r'<select name="team"[^>]*>(.*?)</select>', form, re.S)
    return (
        [v for v in re.findall(r'<option value="([^"]*)"', select.group(1)) if v] if select else []
    )


@pytest.fixture
def demo_users_file(tmp_path):
    path = tmp_path / "users.yaml"
    path.write_text(yaml.safe_dump(users_document(["alice"], ["admin"], "demo-pass")))
    return path


def test_every_team_a_demo_form_offers_exists_with_an_allocation(db_url, sessions, demo_users_file):
    with pytest.raises(BadInput, match="there is no team 'galaxies'"):  # the fresh platform's bug
        check_spawn(
            "teammember",
            "small",
            "galaxies",
            _hub_groups(load_users()["teammember"]),
            settings=QuotaSettings(db_url=db_url),
        )
    assert seed_demo_teams(db_url, demo_users_file) == ["galaxies"]
    offered, policy = {}, load_policy()
    for user in load_users(demo_users_file).values():
        groups = _hub_groups(user)
        offered[user.username] = _team_options(user.username, groups)
        for team in offered[user.username]:
            with sessions() as s:
                assert ops.team_exists(s, team), (user.username, team)
                a = ops.current_allocation(s, team_name=team)
                assert a is not None and a.core_hours > 0, (user.username, team)
            profile = next(iter(policy.profiles_for(policy.tier_of_groups(groups))))
            charge = check_spawn(
                user.username, profile, team, groups, settings=QuotaSettings(db_url=db_url)
            )
            assert charge.team == team and charge.allocation_id == a.id
    # The form really offers a team to the demo team accounts, so the loop above checked something.
    assert offered["teammember"] == ["galaxies"] and offered["teamadmin"] == ["galaxies"]
    assert offered["entry"] == [] and offered["alice"] == []


def test_seeding_again_changes_nothing(db_url, sessions, demo_users_file):
    assert seed_demo_teams(db_url, demo_users_file) == ["galaxies"]
    with sessions() as s:
        first = ops.current_allocation(s, team_name="galaxies").id
    assert seed_demo_teams(db_url, demo_users_file) == []
    with sessions() as s:
        assert ops.current_allocation(s, team_name="galaxies").id == first


def test_a_fresh_local_platform_has_the_teams_its_demo_forms_offer(quota_platform):
    """The wiring: ``roman-platform up`` (its hub config) seeded the quota database at start."""
    qp = quota_platform
    s = requests.Session()
    qp.helpers.hub_login(s, qp.url, "teammember", "team-demo")
    form = s.get(f"{qp.url}/hub/spawn", timeout=30)
    assert form.status_code == 200, form.status_code
    offered = re.findall(r'<option value="([^"]+)">team ', form.text)
    assert offered == ["galaxies"], offered
    for team in offered:
        view = qp.api("admin", "GET", f"api/teams/{team}")
        assert view.status_code == 200, view.text
        assert view.json()["allocation"]["core_hours"] > 0, view.json()
