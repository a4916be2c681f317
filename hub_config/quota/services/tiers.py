"""Tier grants: who holds which tier (the grant, else the hub's group, else the default), and
what each profile costs in that tier."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub_config.quota.errors import BadInput, NotFound
from hub_config.quota.services.common import (
    Actor,
    Changes,
    _policy,
    _when,
    audit,
    check_username,
    iso,
    require_admin,
    user,
)
from hub_config.quota.storage.models import (
    TierGrant,
    User,
    utcnow,
)


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


def tier_of(s: Session, username: str, hub_tier: str | None = None) -> str:
    g = granted_tier(s, username)
    if hub_tier:
        return hub_tier
    return g.tier if g else _policy().default_tier


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
