"""Requests (a tier, a renewal, to join a team) and invitations, and deciding them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub_config.quota.errors import BadInput, Conflict, Forbidden, NotFound
from hub_config.quota.services.allocations import current_allocation, renew
from hub_config.quota.services.common import (
    MAX_JUSTIFICATION,
    Actor,
    Changes,
    _policy,
    _team_groups,
    audit,
    check_team_name,
    iso,
    membership,
    require_admin,
    require_team_admin,
    team,
    user,
)
from hub_config.quota.services.tiers import grant_tier
from hub_config.quota.storage.models import (
    Allocation,
    AllocationState,
    Membership,
    Request,
    RequestKind,
    RequestState,
    Role,
    Team,
    utcnow,
)


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
        pending = _pending(s, RequestKind.join, actor.name, t)
        if pending is not None:
            return pending
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


def _team_of(r: Request) -> Team:
    """The team of a join request or an invitation (both always name one)."""
    if r.team is None:
        raise Conflict(f"request {r.id} names no team")
    return r.team


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
        require_team_admin(s, actor, _team_of(r))
    else:
        require_admin(actor)
    if r.state != RequestState.pending:
        raise Conflict(f"request {request_id} is already {r.state.value}")
    before = request_dict(r)
    r.state = RequestState.approved if approve else RequestState.declined
    r.decided_by, r.decided_at, r.decision_note = actor.name, utcnow(), note
    if r.kind in (RequestKind.invite, RequestKind.join) and approve:
        t = _team_of(r)
        if membership(s, t, r.requester) is None:
            s.add(Membership(team=t, user=user(s, r.requester, create=True), role=Role.member))
            s.flush()
            audit(
                s,
                actor,
                "add_member",
                f"team:{t.name}/user:{r.requester}",
                None,
                {"role": Role.member.value, "by": r.kind.value},
            )
            if changes is not None:
                changes.add_groups.append((_team_groups(t.name)[0], r.requester))
    if r.kind == RequestKind.tier and approve:
        grant_tier(s, actor, r.requester, r.tier or "", changes=changes)
    if r.kind == RequestKind.renewal and r.allocation_id is not None:
        a = s.get(Allocation, r.allocation_id)
        if a is None:
            raise NotFound(f"allocation {r.allocation_id} of request {r.id} no longer exists")
        if approve:
            renew(s, actor, a)
        elif a.state == AllocationState.renewal_requested:
            a.state = AllocationState.active
    audit(s, actor, "decide_request", f"request:{r.id}", before, request_dict(r))
    return request_dict(r)
