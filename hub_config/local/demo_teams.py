"""Demo teams for the local platform: every team a demo account's spawn form offers exists.

The spawn form offers "Charge to team <t>" for each team the IdP asserts (``team:<t>`` groups of
the development provider's demo accounts), and the quota check refuses a team the quota
database does not know. So the local platform's first start creates, from the same users file
the provider serves, each such team with one allocation for the current period. The size is the
base allocation of the highest tier among the team's demo members (``policy.yaml``), so the
numbers come from the one place that defines what a tier gets.

Teams that already exist are left alone (an admin may have changed them); a team created here
that later runs out is renewed through the quota service like any other.

It lives with the one-machine set-up, not in the quota service: only the local platform has demo
accounts to seed from, and the quota service, which runs in both set-ups, reads no identity
provider's files (it imports nothing of ``hub_config.oidc_dev``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path

from hub_config.auth import idp_teams
from hub_config.oidc_dev.users import load_users
from hub_config.policy import load_policy
from hub_config.quota import services as ops
from hub_config.quota.storage.models import utcnow

SEED_ACTOR = ops.Actor("platform-demo-seed", platform_admin=True)


def demo_teams(users_file: str | Path | None = None) -> dict[str, list[str]]:
    """{team: [demo member usernames]} as the IdP asserts them to the hub."""
    ident = load_policy().identity
    members: dict[str, list[str]] = defaultdict(list)
    for u in load_users(users_file).values():
        teams, admin_of = idp_teams(ident, list(u.groups))
        for t in teams | admin_of:
            members[t].append(u.username)
    return dict(members)


def _team_tier(usernames: list[str], users_file: str | Path | None) -> str:
    policy = load_policy()
    users = load_users(users_file)
    tiers = {
        policy.tier_from_idp(list(users[n].groups), users[n].roman_tier) or policy.default_tier
        for n in usernames
    }
    return policy.highest(tiers) or policy.default_tier


def seed_demo_teams(
    db_url: str, users_file: str | Path | None = None, now: dt.datetime | None = None
) -> list[str]:
    """Create each missing demo team with an allocation; return the names created."""
    from hub_config.quota.services.enforcement import sessions_for

    now = now or utcnow()
    created = []
    with sessions_for(db_url)() as s:
        for name, usernames in sorted(demo_teams(users_file).items()):
            if ops.team_exists(s, name):
                continue
            tier = _team_tier(usernames, users_file)
            base = load_policy().tier(tier).base_allocation
            ops.create_team(
                s, SEED_ACTOR, name, f"demo team of the local platform ({', '.join(usernames)})"
            )
            ops.create_allocation(s, SEED_ACTOR, team_name=name, **base.period_from(now))
            created.append(name)
        s.commit()
    return created
