"""Allocations: creating them, the base allocation each tier gets, usage against them, expiry
and renewal."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub_config.quota.errors import BadInput
from hub_config.quota.services import ledger
from hub_config.quota.services.common import (
    Actor,
    _num,
    _policy,
    _when,
    audit,
    check_username,
    iso,
    require_admin,
    team,
    user,
)
from hub_config.quota.settings import QuotaSettings
from hub_config.quota.storage.models import (
    Allocation,
    AllocationState,
    Team,
    User,
    utcnow,
)


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
    if a.user is None:  # the database allows no allocation without a user or a team
        raise BadInput(f"allocation {a.id} has neither a user nor a team")
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
    a = Allocation(user=u, created_by="base", **base.period_from(now))
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
