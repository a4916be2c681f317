"""Teams and their members: creating teams, adding (or inviting) and removing members, member
caps, and the one IdP team sync (:func:`sync_idp_teams`)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub_config.policy import teams_of_groups
from hub_config.quota.errors import BadInput, Conflict, Forbidden, NotFound
from hub_config.quota.services.common import (
    Actor,
    Changes,
    _num,
    _team_groups,
    audit,
    check_team_name,
    check_username,
    membership,
    require_admin,
    require_team_admin,
    team,
    user,
)
from hub_config.quota.services.requests import _pending, invite
from hub_config.quota.storage.models import (
    Membership,
    RequestKind,
    RequestState,
    Role,
    Team,
    utcnow,
)


def create_team(s: Session, actor: Actor, name: str, description: str = "") -> Team:
    require_admin(actor)
    check_team_name(name)
    if not isinstance(description, str) or len(description) > 500:
        raise BadInput("description must be a string of at most 500 characters")
    if s.scalars(select(Team).where(Team.name == name)).first():
        raise Conflict(f"team {name!r} exists")
    t = Team(name=name, description=description)
    s.add(t)
    s.flush()
    audit(s, actor, "create_team", f"team:{name}", None, {"description": description})
    return t


def add_member(
    s: Session,
    actor: Actor,
    team_name: str,
    username: str,
    role: str = "member",
    changes: Changes | None = None,
) -> dict:
    t = team(s, team_name)
    require_team_admin(s, actor, t)
    try:
        r = Role(role)
    except ValueError:
        raise BadInput(f"role must be 'member' or 'admin', not {str(role)[:20]!r}") from None
    if r == Role.admin and not actor.platform_admin:
        raise Forbidden("only platform admins may make team admins")
    u = user(s, check_username(username))
    m = membership(s, t, username)
    if m is None and not actor.platform_admin:
        # Membership gives the team's admins power over the member's servers (the hub role
        # team-admin-<t>), so a team admin cannot impose it: it is the user's own join request
        # being granted, or else an invitation the user must accept (issue 20, attack 1).
        asked = _pending(s, RequestKind.join, username, t)
        if asked is None:
            return invite(s, actor, t, username)
        asked.state, asked.decided_by, asked.decided_at = (
            RequestState.approved,
            actor.name,
            utcnow(),
        )
    before = {"role": m.role.value} if m else None
    if m is None:
        m = Membership(team=t, user=u, role=r)
        s.add(m)
    elif m.role != r:
        if not actor.platform_admin:
            raise Forbidden("only platform admins may change a member's role")
        m.role = r
    s.flush()
    after = {"role": r.value}
    audit(s, actor, "add_member", f"team:{team_name}/user:{username}", before, after)
    if changes is not None:
        g, ga = _team_groups(team_name)
        changes.add_groups.append((g, username))
        (changes.add_groups if r == Role.admin else changes.remove_groups).append((ga, username))
    return after


def remove_member(
    s: Session, actor: Actor, team_name: str, username: str, changes: Changes | None = None
) -> None:
    t = team(s, team_name)
    require_team_admin(s, actor, t)
    m = membership(s, t, check_username(username))
    if m is None:
        raise NotFound(f"{username!r} is not in team {team_name!r}")
    if m.role == Role.admin and not actor.platform_admin:
        raise Forbidden("only platform admins may remove a team admin")
    audit(
        s,
        actor,
        "remove_member",
        f"team:{team_name}/user:{username}",
        {"role": m.role.value, "cap_core_hours": m.cap_core_hours},
        None,
    )
    s.delete(m)
    if changes is not None:
        changes.remove_groups.extend((g, username) for g in _team_groups(team_name))


def set_cap(
    s: Session, actor: Actor, team_name: str, username: str, core_hours=None, gpu_hours=None
) -> dict:
    t = team(s, team_name)
    require_team_admin(s, actor, t)
    if username == actor.name and not actor.platform_admin:
        raise Forbidden("you cannot change your own cap")
    m = membership(s, t, check_username(username))
    if m is None:
        raise BadInput(f"{username!r} is not in team {team_name!r}")
    core = _num(core_hours, "core_hours", allow_none=True)
    gpu = _num(gpu_hours, "gpu_hours", allow_none=True)
    before = {"cap_core_hours": m.cap_core_hours, "cap_gpu_hours": m.cap_gpu_hours}
    m.cap_core_hours, m.cap_gpu_hours = core, gpu
    after = {"cap_core_hours": core, "cap_gpu_hours": gpu}
    audit(s, actor, "set_cap", f"team:{team_name}/user:{username}", before, after)
    return after


def sync_idp_teams(
    s: Session, username: str, groups: Iterable[str], only: str | None = None
) -> list[Membership]:
    """The one IdP team sync: teams the IdP asserts join the quota record.

    Hub group ``team-<t>`` (the authenticator's mapping of the IdP's ``team:<t>``) makes the user
    a member of team ``<t>``; with ``team-<t>-admins`` too (``team:<t>:admin``, for which the
    authenticator sets both groups) an admin. Only for teams the quota database knows; a
    membership is added, or raised to admin, never lowered or removed here (removal is a team
    admin's decision in the quota service). ``only`` limits the pass to one team (the spawn
    check asks about the team it charges). Writes in the caller's transaction, audited as
    ``sync_from_idp``; returns the memberships it added or raised.
    """
    teams, admin_of = teams_of_groups(set(groups))
    names = teams if only is None else teams & {only}
    if not names:
        return []
    changed = []
    for t in s.scalars(select(Team).where(Team.name.in_(names)).order_by(Team.name)):
        role = Role.admin if t.name in admin_of else Role.member
        m = membership(s, t, username)
        if m is None:
            m = Membership(team=t, user=user(s, username, create=True), role=role)
            s.add(m)
        elif role == Role.admin and m.role != Role.admin:
            m.role = role
        else:
            continue
        s.flush()
        audit(
            s,
            "system",
            "sync_from_idp",
            f"team:{t.name}/user:{username}",
            None,
            {"role": role.value},
        )
        changed.append(m)
    return changed
