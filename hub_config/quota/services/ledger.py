"""The usage ledger: turning sightings of running things into charged core- and GPU-hours.

The design (docs/quotas.md has the long form): every running thing (a user server, a Dask
scheduler, a Dask worker) has a stable key and, where the API tells it, a start time. Each
sampling pass charges, in ONE transaction together with the new checkpoints, the stretch since the
thing's last checkpoint. Because the checkpoint and the charge commit together, a sampler killed
at any moment either charged a stretch and moved the checkpoint, or did neither: nothing is
counted twice, and on restart the next pass charges the whole gap for a thing still running (same
start time, so the same instance ran throughout). Only a thing that vanished without a reported
stop time is estimated: it is charged half of (time since last seen, capped at one step).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from types import EllipsisType

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from hub_config.quota.storage.models import Checkpoint, SamplerState, UsageRecord

HOUR = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Running:
    """One thing a source saw: who pays, how many cores/GPUs, and since (until) when."""

    key: str
    kind: str
    username: str
    team: str | None
    cores: float
    gpus: float
    started: dt.datetime | None
    stopped: dt.datetime | None = None
    #: gone, and its owner's stop time may still come: charge nothing, keep the checkpoint
    hold: bool = False


def _floor_hour(t: dt.datetime) -> dt.datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def charge(
    session: Session, item: Running | Checkpoint, start: dt.datetime, end: dt.datetime
) -> float:
    """Add [start, end) for ``item`` to the ledger, extending its open stretch when contiguous.

    Returns the core-hours charged.
    """
    total = 0.0
    t = start
    while t < end:
        piece_end = min(end, _floor_hour(t) + HOUR)
        hours = (piece_end - t).total_seconds() / 3600.0
        total += hours * item.cores
        prev = session.scalars(
            select(UsageRecord).where(UsageRecord.key == item.key, UsageRecord.end == t)
        ).first()
        if (
            prev is not None
            and _floor_hour(prev.start) == _floor_hour(t)
            and prev.team == item.team
            and prev.cores == item.cores
            and prev.gpus == item.gpus
        ):
            prev.end = piece_end
            prev.core_hours += hours * item.cores
            prev.gpu_hours += hours * item.gpus
        else:
            session.add(
                UsageRecord(
                    key=item.key,
                    kind=item.kind,
                    username=item.username,
                    team=item.team,
                    start=t,
                    end=piece_end,
                    cores=item.cores,
                    gpus=item.gpus,
                    core_hours=hours * item.cores,
                    gpu_hours=hours * item.gpus,
                )
            )
        session.flush()
        t = piece_end
    return total


def integrate(
    session: Session,
    source: str,
    observed: Iterable[Running],
    now: dt.datetime,
    step: float,
) -> dict[str, float]:
    """Charge everything ``source`` reported at ``now``; the caller commits (one transaction).

    ``step`` is the sampling interval in seconds; keys must start with ``source + ':'`` so two
    sources never touch each other's checkpoints. Returns core-hours charged per key.
    """
    state = session.get(SamplerState, source)
    watermark = state.watermark if state else None
    checkpoints = {
        c.key: c
        for c in session.scalars(select(Checkpoint).where(Checkpoint.key.like(f"{source}:%")))
    }
    charged: dict[str, float] = defaultdict(float)
    for obs in observed:
        if not obs.key.startswith(source + ":"):
            raise ValueError(f"key {obs.key!r} does not belong to source {source!r}")
        cp = checkpoints.pop(obs.key, None)
        if cp is not None and cp.started != obs.started:
            # The key was reused by a new instance: the old one vanished unseen.
            charged[cp.key] += _charge_vanished(session, cp, now, step)
            cp = None
        if obs.hold:
            continue  # its checkpoint (if any) stays as it is: charged from there once decided
        if cp is not None:
            frm = cp.last_seen
        else:
            frm = obs.started or now
            if watermark is not None and frm < watermark:
                frm = watermark
        to = now if obs.stopped is None else min(obs.stopped, now)
        if to > frm:
            charged[obs.key] += charge(session, obs, frm, to)
        if obs.stopped is not None and obs.stopped <= now:
            if cp is not None:
                session.delete(cp)
            continue
        if cp is None:
            cp = Checkpoint(key=obs.key)
            session.add(cp)
        cp.kind, cp.username, cp.team = obs.kind, obs.username, obs.team
        cp.cores, cp.gpus, cp.started = obs.cores, obs.gpus, obs.started
        cp.last_seen = max(now, frm)
    for cp in checkpoints.values():
        charged[cp.key] += _charge_vanished(session, cp, now, step)
    if state is None:
        session.add(SamplerState(source=source, watermark=now))
    else:
        state.watermark = max(now, state.watermark)
    session.flush()
    return dict(charged)


def _charge_vanished(session: Session, cp: Checkpoint, now: dt.datetime, step: float) -> float:
    gap = min((now - cp.last_seen).total_seconds(), step)
    used = 0.0
    if gap > 0:
        used = charge(session, cp, cp.last_seen, cp.last_seen + dt.timedelta(seconds=gap / 2))
    session.delete(cp)
    return used


# --------------------------------------------------------------------------- queries
def _filters(username: str | None, team: str | EllipsisType | None):
    conds = []
    if username is not None:
        conds.append(UsageRecord.username == username)
    if team is None:
        conds.append(UsageRecord.team.is_(None))
    elif team is not Ellipsis:
        conds.append(UsageRecord.team == team)
    return conds


def totals(
    session: Session,
    start: dt.datetime,
    end: dt.datetime,
    username: str | None = None,
    team: str | EllipsisType | None = Ellipsis,
) -> tuple[float, float]:
    """(core-hours, GPU-hours) used in [start, end); ``team=None`` means personal use only.

    Stretches never cross an hour, so only the few at the two edges are prorated.
    """
    conds = _filters(username, team)
    inside = session.execute(
        select(
            func.coalesce(func.sum(UsageRecord.core_hours), 0.0),
            func.coalesce(func.sum(UsageRecord.gpu_hours), 0.0),
        ).where(*conds, UsageRecord.start >= start, UsageRecord.end <= end)
    ).one()
    core, gpu = float(inside[0]), float(inside[1])
    edges = session.scalars(
        select(UsageRecord).where(
            *conds,
            UsageRecord.start < end,
            UsageRecord.end > start,
            or_(UsageRecord.start < start, UsageRecord.end > end),
        )
    )
    for r in edges:
        span = (r.end - r.start).total_seconds()
        if span <= 0:
            continue
        overlap = (min(r.end, end) - max(r.start, start)).total_seconds()
        core += r.core_hours * overlap / span
        gpu += r.gpu_hours * overlap / span
    return core, gpu


def per_member(
    session: Session, team: str, start: dt.datetime, end: dt.datetime
) -> dict[str, tuple[float, float]]:
    names = session.scalars(
        select(UsageRecord.username).where(UsageRecord.team == team).distinct()
    ).all()
    return {n: totals(session, start, end, username=n, team=team) for n in names}


def series(
    session: Session,
    start: dt.datetime,
    end: dt.datetime,
    username: str | None = None,
    team: str | EllipsisType | None = Ellipsis,
    bucket: str = "hour",
) -> list[dict]:
    """Cumulative use over time, one point per hour (or day) that had use: the usage plot's data."""
    rows = session.execute(
        select(UsageRecord.start, UsageRecord.core_hours, UsageRecord.gpu_hours)
        .where(*_filters(username, team), and_(UsageRecord.start >= start, UsageRecord.start < end))
        .order_by(UsageRecord.start)
    ).all()
    per: dict[dt.datetime, list[float]] = {}
    for s, c, g in rows:
        b = (
            _floor_hour(s)
            if bucket == "hour"
            else s.replace(hour=0, minute=0, second=0, microsecond=0)
        )
        acc = per.setdefault(b, [0.0, 0.0])
        acc[0] += c
        acc[1] += g
    out, cum_c, cum_g = [], 0.0, 0.0
    for b in sorted(per):
        cum_c += per[b][0]
        cum_g += per[b][1]
        out.append(
            {
                "t": b.isoformat() + "Z",
                "core_hours": per[b][0],
                "gpu_hours": per[b][1],
                "cumulative_core_hours": cum_c,
                "cumulative_gpu_hours": cum_g,
            }
        )
    return out
