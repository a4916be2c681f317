"""What every quota operation shares: who acts (:class:`Actor`), the hub group changes it
implies (:class:`Changes`), the audit entry, name checks, record look-ups and permission checks.

Each operation (:mod:`.tiers`, :mod:`.teams`, :mod:`.allocations`, :mod:`.requests`) takes the
acting user, checks on the server side that they may do it, validates its input, writes the
change and its audit entry in the caller's transaction, and raises a :mod:`..errors` exception
otherwise (so a refused or bad call changes nothing once rolled back).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub_config.quota.errors import BadInput, Forbidden, NotFound
from hub_config.quota.storage.models import (
    AuditEntry,
    Membership,
    Role,
    Team,
    User,
)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,62}$")


TEAM_RE = re.compile(r"^[a-z][a-z0-9-]{0,40}$")


MAX_JUSTIFICATION = 4000


@dataclass(frozen=True)
class Actor:
    """Who is calling: the hub user name, and whether the hub grants them quota admin."""

    name: str
    platform_admin: bool = False
    hub_tier: str | None = None  # the tier-<name> group the hub reports, when known


@dataclass
class Changes:
    """Side effects on the hub the caller must apply after commit (group membership)."""

    add_groups: list[tuple[str, str]] = field(default_factory=list)  # (group, user)
    remove_groups: list[tuple[str, str]] = field(default_factory=list)


def audit(
    s: Session, actor: Actor | str, action: str, target: str, before=None, after=None
) -> None:
    s.add(
        AuditEntry(
            actor=actor if isinstance(actor, str) else actor.name,
            action=action,
            target=target,
            before=before,
            after=after,
        )
    )


def check_username(name: object) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise BadInput(
            f"invalid username {str(name)[:80]!r}: lower-case letters, digits, . _ @ - (max 63)"
        )
    return name


def check_team_name(name: object) -> str:
    if not isinstance(name, str) or not TEAM_RE.match(name):
        raise BadInput(
            f"invalid team name {str(name)[:80]!r}: lower-case letters, digits, - (max 41)"
        )
    return name


def user(s: Session, name: str, create: bool = False) -> User:
    u = s.scalars(select(User).where(User.name == name)).first()
    if u is None:
        if not create:
            raise BadInput(f"unknown user {name!r}")
        u = User(name=check_username(name))
        s.add(u)
        s.flush()
    return u


def known_user(s: Session, name: str, in_hub: Callable[[str], bool]) -> str:
    """Users must exist (in the quota DB or the hub) before anything refers to them."""
    check_username(name)
    if s.scalars(select(User).where(User.name == name)).first() is None:
        if not in_hub(name):
            raise BadInput(f"unknown user {name!r}")
        user(s, name, create=True)
    return name


def team(s: Session, name: str) -> Team:
    t = s.scalars(select(Team).where(Team.name == name)).first()
    if t is None:
        raise NotFound(f"no team {name!r}")
    return t


def membership(s: Session, t: Team, username: str) -> Membership | None:
    return s.scalars(
        select(Membership).join(User).where(Membership.team_id == t.id, User.name == username)
    ).first()


def require_admin(actor: Actor) -> None:
    if not actor.platform_admin:
        raise Forbidden("only platform admins may do this")


def require_team_admin(s: Session, actor: Actor, t: Team) -> None:
    if actor.platform_admin:
        return
    m = membership(s, t, actor.name)
    if m is None or m.role != Role.admin:
        raise Forbidden(f"you are not an admin of team {t.name!r}")


def require_team_reader(s: Session, actor: Actor, t: Team) -> Membership | None:
    m = membership(s, t, actor.name)
    if actor.platform_admin:
        return m
    if m is None:
        raise Forbidden(f"you are not a member of team {t.name!r}")
    return m


def _num(value: object, what: str, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f"{what} must be a number")
    if value != value or value in (float("inf"), float("-inf")):
        raise BadInput(f"{what} must be finite")
    if value < 0:
        raise BadInput(f"{what} must not be negative")
    if value > 1e9:
        raise BadInput(f"{what} is implausibly large")
    return float(value)


def _when(value: object, what: str) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        t = value
    elif isinstance(value, str) and len(value) <= 40:
        try:
            t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise BadInput(f"{what} is not an ISO date/time: {value!r}") from None
    else:
        raise BadInput(f"{what} must be an ISO date/time string")
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC).replace(tzinfo=None)
    return t


def iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat() + "Z"


def _policy():
    from hub_config.policy import load_policy

    return load_policy()


def _team_groups(team_name: str) -> tuple[str, str]:
    from hub_config.policy import TEAM_ADMIN_SUFFIX, TEAM_GROUP_PREFIX

    return f"{TEAM_GROUP_PREFIX}{team_name}", f"{TEAM_GROUP_PREFIX}{team_name}{TEAM_ADMIN_SUFFIX}"


def team_exists(s: Session, name: str) -> bool:
    return s.scalars(select(Team.id).where(Team.name == name)).first() is not None
