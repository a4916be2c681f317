"""What the pages and ``/api/me`` show: a user's account, a team's view and all usage."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub_config.quota.services import ledger
from hub_config.quota.services.allocations import (
    allocation_dict,
    current_allocation,
    ensure_base_allocation,
)
from hub_config.quota.services.common import (
    Actor,
    _policy,
    iso,
    require_admin,
    require_team_reader,
    team,
)
from hub_config.quota.services.home_storage import storage_view
from hub_config.quota.services.requests import request_dict
from hub_config.quota.services.tiers import granted_tier, profile_costs, tier_of
from hub_config.quota.settings import QuotaSettings
from hub_config.quota.storage.models import (
    AuditEntry,
    Request,
    RequestState,
    Role,
    Team,
    User,
    Warning_,
    utcnow,
)


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


def requests_for(s: Session, actor: Actor) -> list[dict]:
    """Pending requests (platform admins) or the actor's own requests, newest first (500 at most)."""
    q = select(Request).order_by(Request.created.desc()).limit(500)
    if actor.platform_admin:
        q = q.where(Request.state == RequestState.pending)
    else:
        q = q.where(Request.requester == actor.name)
    return [request_dict(r) for r in s.scalars(q)]


def audit_log(s: Session, actor: Actor, limit: int) -> list[dict]:
    """The newest ``limit`` audit entries (platform admins)."""
    require_admin(actor)
    return [
        {
            "at": iso(e.at),
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "before": e.before,
            "after": e.after,
        }
        for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit))
    ]


def admin_view(s: Session, actor: Actor) -> dict:
    """The admin page: teams, pending requests, the last month's usage, the newest audit entries."""
    require_admin(actor)
    now = utcnow()
    return {
        "teams": [t.name for t in s.scalars(select(Team).order_by(Team.name))],
        "requests": [
            request_dict(r)
            for r in s.scalars(
                select(Request)
                .where(Request.state == RequestState.pending)
                .order_by(Request.created)
            )
        ],
        "usage": all_usage(s, actor, now - dt.timedelta(days=31), now + dt.timedelta(hours=1)),
        "audit": s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(30)).all(),
        "tiers": _policy().tier_names,
    }
