"""Everything the service, the CLI and the hub hooks can do to the quota records.

Each operation takes the acting user, checks on the server side that they may do it, validates
its input, writes the change and its audit entry in the caller's transaction, and raises a
:mod:`errors` exception otherwise (so a refused or bad call changes nothing once rolled back).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub_config.quota.errors import BadInput, Conflict, Forbidden, NotFound
from hub_config.quota.services import ledger
from hub_config.quota.services.home_storage import storage_view
from hub_config.quota.settings import QuotaSettings
from hub_config.quota.storage.models import (
    Allocation,
    AllocationState,
    AuditEntry,
    Membership,
    Request,
    RequestKind,
    RequestState,
    Role,
    Team,
    TierGrant,
    User,
    Warning_,
    utcnow,
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


# --------------------------------------------------------------------------- helpers
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


# --------------------------------------------------------------------------- tiers
def granted_tier(s: Session, username: str, now: dt.datetime | None = None) -> TierGrant | None:
    now = now or utcnow()
    for g in s.scalars(
        select(TierGrant)
        .join(User)
        .where(User.name == username, TierGrant.revoked_at.is_(None))
        .order_by(TierGrant.granted_at.desc(), TierGrant.id.desc())
    ):
        if g.expires_at is None or g.expires_at > now:
            return g
    return None


def _policy():
    from hub_config.policy import load_policy

    return load_policy()


def grant_tier(
    s: Session,
    actor: Actor,
    username: str,
    tier: str,
    expires_at=None,
    changes: Changes | None = None,
) -> dict:
    require_admin(actor)
    check_username(username)
    if not isinstance(tier, str) or tier not in _policy().tiers:
        raise BadInput(f"unknown tier {str(tier)[:40]!r}; tiers are {_policy().tier_names}")
    expires = _when(expires_at, "expires_at")
    if expires is not None and expires <= utcnow():
        raise BadInput("expires_at must be in the future")
    u = user(s, username)
    old = granted_tier(s, username)
    before = {"tier": old.tier, "expires_at": iso(old.expires_at)} if old else None
    if old is not None:
        old.revoked_at, old.revoked_by = utcnow(), actor.name
    g = TierGrant(user=u, tier=tier, granted_by=actor.name, expires_at=expires)
    s.add(g)
    after = {"tier": tier, "expires_at": iso(expires)}
    audit(s, actor, "grant_tier", f"user:{username}", before, after)
    if changes is not None:
        _tier_group_changes(changes, username, tier)
    return after


def _tier_group_changes(changes: Changes, username: str, tier: str) -> None:
    from hub_config.policy import tier_group

    for other in _policy().tier_names:
        if other != tier:
            changes.remove_groups.append((tier_group(other), username))
    changes.add_groups.append((tier_group(tier), username))


def revoke_tier(s: Session, actor: Actor, username: str, changes: Changes | None = None) -> None:
    require_admin(actor)
    user(s, check_username(username))
    old = granted_tier(s, username)
    if old is None:
        raise NotFound(f"{username!r} has no tier grant to revoke")
    old.revoked_at, old.revoked_by = utcnow(), actor.name
    audit(s, actor, "revoke_tier", f"user:{username}", {"tier": old.tier}, None)
    if changes is not None:
        _tier_group_changes(changes, username, _policy().default_tier)


# --------------------------------------------------------------------------- teams
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


def _team_groups(team_name: str) -> tuple[str, str]:
    from hub_config.policy import TEAM_ADMIN_SUFFIX, TEAM_GROUP_PREFIX

    return f"{TEAM_GROUP_PREFIX}{team_name}", f"{TEAM_GROUP_PREFIX}{team_name}{TEAM_ADMIN_SUFFIX}"


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


def _pending(s: Session, kind: RequestKind, requester: str, t: Team) -> Request | None:
    return s.scalars(
        select(Request).where(
            Request.kind == kind,
            Request.requester == requester,
            Request.team_id == t.id,
            Request.state == RequestState.pending,
        )
    ).first()


def invite(s: Session, actor: Actor, t: Team, username: str) -> dict:
    """A pending invitation: a request row whose requester is the invitee, who decides it."""
    r = _pending(s, RequestKind.invite, username, t)
    if r is None:
        r = Request(
            kind=RequestKind.invite,
            requester=username,
            team=t,
            justification=f"invited to team {t.name} by {actor.name}",
        )
        s.add(r)
        s.flush()
        audit(s, actor, "invite_member", f"team:{t.name}/user:{username}", None, request_dict(r))
    return {"invited": username, "request": r.id, "state": r.state.value}


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


# --------------------------------------------------------------------------- allocations
def create_allocation(
    s: Session,
    actor: Actor,
    *,
    user_name: str | None = None,
    team_name: str | None = None,
    core_hours=0,
    gpu_hours=0,
    home_gb=0,
    scratch_gb=0,
    period_start=None,
    period_end=None,
) -> Allocation:
    require_admin(actor)
    if (user_name is None) == (team_name is None):
        raise BadInput("give exactly one of 'user' or 'team'")
    start = _when(period_start, "period_start") or utcnow()
    end = _when(period_end, "period_end")
    if end is None:
        raise BadInput("period_end is required")
    if end <= start:
        raise BadInput("period_end must be after period_start")
    a = Allocation(
        user=user(s, check_username(user_name)) if user_name else None,
        team=team(s, team_name) if team_name else None,
        core_hours=_num(core_hours, "core_hours"),
        gpu_hours=_num(gpu_hours, "gpu_hours"),
        home_gb=_num(home_gb, "home_gb"),
        scratch_gb=_num(scratch_gb, "scratch_gb"),
        period_start=start,
        period_end=end,
        created_by=actor.name,
        state=AllocationState.active if end > utcnow() else AllocationState.expired,
    )
    s.add(a)
    s.flush()
    audit(
        s,
        actor,
        "create_allocation",
        f"allocation:{a.id}",
        None,
        allocation_dict(s, a, usage=False),
    )
    return a


def allocation_dict(s: Session, a: Allocation, usage: bool = True) -> dict:
    d = {
        "id": a.id,
        "user": a.user.name if a.user else None,
        "team": a.team.name if a.team else None,
        "core_hours": a.core_hours,
        "gpu_hours": a.gpu_hours,
        "home_gb": a.home_gb,
        "scratch_gb": a.scratch_gb,
        "period_start": iso(a.period_start),
        "period_end": iso(a.period_end),
        "state": effective_state(a).value,
    }
    if usage:
        used_c, used_g = allocation_usage(s, a)
        d.update(
            used_core_hours=used_c,
            used_gpu_hours=used_g,
            remaining_core_hours=a.core_hours - used_c,
            remaining_gpu_hours=a.gpu_hours - used_g,
        )
    return d


def effective_state(a: Allocation, now: dt.datetime | None = None) -> AllocationState:
    """Expiry happens on the date even before the periodic sweep writes it."""
    if (now or utcnow()) >= a.period_end:
        return AllocationState.expired
    return a.state


def allocation_usage(s: Session, a: Allocation) -> tuple[float, float]:
    if a.team is not None:
        return ledger.totals(s, a.period_start, a.period_end, team=a.team.name)
    return ledger.totals(s, a.period_start, a.period_end, username=a.user.name, team=None)


def current_allocation(
    s: Session,
    *,
    user_name: str | None = None,
    team_name: str | None = None,
    now: dt.datetime | None = None,
) -> Allocation | None:
    """The allocation charged now: the live one covering ``now``, else the latest one."""
    now = now or utcnow()
    q = select(Allocation)
    if team_name is not None:
        q = q.join(Team, Allocation.team_id == Team.id).where(Team.name == team_name)
    else:
        q = q.join(User, Allocation.user_id == User.id).where(User.name == user_name)
    rows = s.scalars(q.order_by(Allocation.period_end.desc(), Allocation.id.desc())).all()
    live = [a for a in rows if a.period_start <= now < a.period_end]
    return live[0] if live else (rows[0] if rows else None)


def tier_of(s: Session, username: str, hub_tier: str | None = None) -> str:
    g = granted_tier(s, username)
    if hub_tier:
        return hub_tier
    return g.tier if g else _policy().default_tier


def ensure_base_allocation(
    s: Session, settings: QuotaSettings, username: str, tier: str, now: dt.datetime | None = None
) -> Allocation | None:
    """Everyone has a base allocation for their tier: create this period's one when missing."""
    now = now or utcnow()
    tier_policy = _policy().tiers.get(tier)
    if tier_policy is None:
        return None
    base = tier_policy.base_allocation
    cur = current_allocation(s, user_name=username, now=now)
    if cur is not None and cur.period_start <= now < cur.period_end:
        return cur
    if cur is not None and cur.created_by != "base":
        return cur  # an explicit allocation ran out: renewing it is a decision, not automatic
    u = user(s, username, create=True)
    a = Allocation(
        user=u,
        core_hours=base.core_hours,
        gpu_hours=base.gpu_hours,
        home_gb=base.home_gb,
        scratch_gb=base.scratch_gb,
        period_start=now,
        period_end=now + dt.timedelta(days=base.period_days),
        created_by="base",
    )
    s.add(a)
    s.flush()
    audit(
        s,
        "system",
        "base_allocation",
        f"allocation:{a.id}",
        None,
        {"user": username, "tier": tier, "core_hours": base.core_hours},
    )
    return a


def expire_due(s: Session, now: dt.datetime | None = None) -> int:
    now = now or utcnow()
    n = 0
    for a in s.scalars(
        select(Allocation).where(
            Allocation.period_end <= now, Allocation.state != AllocationState.expired
        )
    ):
        audit(
            s,
            "system",
            "expire",
            f"allocation:{a.id}",
            {"state": a.state.value},
            {"state": "expired"},
        )
        a.state = AllocationState.expired
        n += 1
    return n


# --------------------------------------------------------------------------- requests
def create_request(
    s: Session,
    actor: Actor,
    kind: str,
    justification: str,
    tier: str | None = None,
    team_name: str | None = None,
) -> Request:
    if not isinstance(justification, str) or not justification.strip():
        raise BadInput("a justification is required")
    if len(justification) > MAX_JUSTIFICATION:
        raise BadInput(f"justification is longer than {MAX_JUSTIFICATION} characters")
    user(s, actor.name, create=True)
    if kind == RequestKind.tier.value:
        if not isinstance(tier, str) or tier not in _policy().tiers:
            raise BadInput(f"unknown tier {str(tier)[:40]!r}")
        r = Request(
            kind=RequestKind.tier, requester=actor.name, tier=tier, justification=justification
        )
    elif kind == RequestKind.renewal.value:
        if team_name is not None:
            t = team(s, team_name)
            require_team_admin(s, actor, t)
            a = current_allocation(s, team_name=team_name)
        else:
            t = None
            a = current_allocation(s, user_name=actor.name)
        if a is None:
            raise BadInput("there is no allocation to renew")
        if a.state != AllocationState.expired:
            a.state = AllocationState.renewal_requested
        r = Request(
            kind=RequestKind.renewal,
            requester=actor.name,
            team=t,
            allocation_id=a.id,
            justification=justification,
        )
    elif kind == RequestKind.join.value:
        t = team(s, check_team_name(team_name))
        if membership(s, t, actor.name) is not None:
            raise Conflict(f"you are already in team {t.name!r}")
        r = _pending(s, RequestKind.join, actor.name, t)
        if r is not None:
            return r
        r = Request(
            kind=RequestKind.join, requester=actor.name, team=t, justification=justification
        )
    else:
        raise BadInput("kind must be 'tier', 'renewal' or 'join'")
    s.add(r)
    s.flush()
    audit(s, actor, "request", f"request:{r.id}", None, request_dict(r))
    return r


def request_dict(r: Request) -> dict:
    return {
        "id": r.id,
        "kind": r.kind.value,
        "requester": r.requester,
        "tier": r.tier,
        "team": r.team.name if r.team else None,
        "allocation_id": r.allocation_id,
        "justification": r.justification,
        "state": r.state.value,
        "created": iso(r.created),
        "decided_by": r.decided_by,
        "decided_at": iso(r.decided_at),
        "note": r.decision_note,
    }


def decide_request(
    s: Session,
    actor: Actor,
    request_id: int,
    approve: bool,
    note: str = "",
    changes: Changes | None = None,
) -> dict:
    """Platform admins decide tier and renewal requests; a team's admins decide requests to
    join it; only the invitee decides an invitation (accepting it makes them a member)."""
    if not isinstance(note, str) or len(note) > 1000:
        raise BadInput("note must be a string of at most 1000 characters")
    r = s.get(Request, request_id)
    if r is None:
        raise NotFound(f"no request {request_id}")
    if r.kind == RequestKind.invite:
        if actor.name != r.requester:
            raise Forbidden("only the invited user may accept or decline an invitation")
    elif r.kind == RequestKind.join:
        require_team_admin(s, actor, r.team)
    else:
        require_admin(actor)
    if r.state != RequestState.pending:
        raise Conflict(f"request {request_id} is already {r.state.value}")
    before = request_dict(r)
    r.state = RequestState.approved if approve else RequestState.declined
    r.decided_by, r.decided_at, r.decision_note = actor.name, utcnow(), note
    if (
        r.kind in (RequestKind.invite, RequestKind.join)
        and approve
        and membership(s, r.team, r.requester) is None
    ):
        s.add(Membership(team=r.team, user=user(s, r.requester, create=True), role=Role.member))
        s.flush()
        audit(
            s,
            actor,
            "add_member",
            f"team:{r.team.name}/user:{r.requester}",
            None,
            {"role": Role.member.value, "by": r.kind.value},
        )
        if changes is not None:
            changes.add_groups.append((_team_groups(r.team.name)[0], r.requester))
    if r.kind == RequestKind.tier and approve:
        grant_tier(s, actor, r.requester, r.tier, changes=changes)
    if r.kind == RequestKind.renewal and r.allocation_id is not None:
        a = s.get(Allocation, r.allocation_id)
        if approve:
            renew(s, actor, a)
        elif a.state == AllocationState.renewal_requested:
            a.state = AllocationState.active
    audit(s, actor, "decide_request", f"request:{r.id}", before, request_dict(r))
    return request_dict(r)


def renew(s: Session, actor: Actor, a: Allocation) -> Allocation:
    """A new period of the same size, starting when the old one ends (or now, if it lapsed)."""
    length = a.period_end - a.period_start
    start = max(a.period_end, utcnow())
    new = Allocation(
        user=a.user,
        team=a.team,
        core_hours=a.core_hours,
        gpu_hours=a.gpu_hours,
        home_gb=a.home_gb,
        scratch_gb=a.scratch_gb,
        period_start=start,
        period_end=start + length,
        created_by=actor.name,
    )
    if a.state == AllocationState.renewal_requested:
        a.state = AllocationState.active
    s.add(new)
    s.flush()
    audit(
        s,
        actor,
        "renew",
        f"allocation:{a.id}",
        None,
        {"new_allocation": new.id, "period_end": iso(new.period_end)},
    )
    return new


# --------------------------------------------------------------------------- views
def profile_costs(tier: str | None = None) -> dict[str, dict]:
    """What each profile costs per hour: the cores it reserves and its GPUs (from the policy)."""
    pol = _policy()
    profiles = pol.profiles_for(tier) if tier else pol.profiles
    return {
        k: {
            "display_name": p.display_name,
            "core_hours_per_hour": p.cpu_guarantee,
            "gpu_hours_per_hour": float(p.gpus),
        }
        for k, p in profiles.items()
    }


def me(s: Session, actor: Actor, settings: QuotaSettings) -> dict:
    tier = tier_of(s, actor.name, actor.hub_tier)
    ensure_base_allocation(s, settings, actor.name, tier)
    g = granted_tier(s, actor.name)
    teams = []
    u = s.scalars(select(User).where(User.name == actor.name)).first()
    for m in u.memberships if u else []:
        a = current_allocation(s, team_name=m.team.name)
        teams.append(
            {
                "name": m.team.name,
                "role": m.role.value,
                "cap_core_hours": m.cap_core_hours,
                "cap_gpu_hours": m.cap_gpu_hours,
                "allocation": allocation_dict(s, a) if a else None,
            }
        )
    a = current_allocation(s, user_name=actor.name)
    now = utcnow()
    start = a.period_start if a else now - dt.timedelta(days=30)
    reqs = s.scalars(
        select(Request)
        .where(Request.requester == actor.name)
        .order_by(Request.created.desc())
        .limit(50)
    ).all()
    warns = s.scalars(
        select(Warning_).where(Warning_.username == actor.name, Warning_.cleared_at.is_(None))
    ).all()
    return {
        "name": actor.name,
        "tier": tier,
        "platform_admin": actor.platform_admin,
        "tier_grant": {"tier": g.tier, "expires_at": iso(g.expires_at), "granted_by": g.granted_by}
        if g
        else None,
        "allocation": allocation_dict(s, a) if a else None,
        "teams": teams,
        "usage": ledger.series(s, start, now + dt.timedelta(hours=1), username=actor.name),
        "profile_costs": profile_costs(tier),
        "requests": [request_dict(r) for r in reqs],
        "warnings": [
            {"reason": w.reason, "stop_after": iso(w.stop_after), "stopped_at": iso(w.stopped_at)}
            for w in warns
        ],
        "storage": storage_view(s, actor.name, a.home_gb if a else None),
    }


def team_view(s: Session, actor: Actor, team_name: str) -> dict:
    t = team(s, team_name)
    m = require_team_reader(s, actor, t)
    is_admin = actor.platform_admin or (m is not None and m.role == Role.admin)
    a = current_allocation(s, team_name=team_name)
    now = utcnow()
    start = a.period_start if a else now - dt.timedelta(days=30)
    end = a.period_end if a else now
    out = {
        "name": t.name,
        "description": t.description,
        "can_admin": is_admin,
        "allocation": allocation_dict(s, a) if a else None,
        "usage": ledger.series(s, start, now + dt.timedelta(hours=1), team=team_name),
    }
    if is_admin:
        used = ledger.per_member(s, team_name, start, end)
        out["members"] = [
            {
                "name": mm.user.name,
                "role": mm.role.value,
                "cap_core_hours": mm.cap_core_hours,
                "cap_gpu_hours": mm.cap_gpu_hours,
                "used_core_hours": used.get(mm.user.name, (0.0, 0.0))[0],
                "used_gpu_hours": used.get(mm.user.name, (0.0, 0.0))[1],
            }
            for mm in sorted(t.memberships, key=lambda x: x.user.name)
        ]
        out["requests"] = [
            request_dict(r)
            for r in s.scalars(
                select(Request)
                .where(Request.team_id == t.id)
                .order_by(Request.created.desc())
                .limit(50)
            )
        ]
    return out


def all_usage(s: Session, actor: Actor, start: dt.datetime, end: dt.datetime) -> list[dict]:
    require_admin(actor)
    from hub_config.quota.storage.models import UsageRecord

    rows = s.execute(select(UsageRecord.username, UsageRecord.team).distinct()).all()
    out = []
    for username, team_name in sorted(rows, key=lambda r: (r[0], r[1] or "")):
        c, g = ledger.totals(s, start, end, username=username, team=team_name)
        out.append({"user": username, "team": team_name, "core_hours": c, "gpu_hours": g})
    return out


def team_exists(s: Session, name: str) -> bool:
    return s.scalars(select(Team.id).where(Team.name == name)).first() is not None
