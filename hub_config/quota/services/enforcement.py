"""What the spawner and the gateway ask before starting anything, and the grace-period stop.

``check_spawn`` / ``check_cluster`` are synchronous and open their own session on the quota
database (``$ROMAN_QUOTA_DB_URL``), so the hub's spawner and dask-gateway-server's options handler
can call them without the quota service running. The team to charge is validated here, on the
server side, against the quota database's memberships; the client's word is never taken.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hub_config.quota import services as ops
from hub_config.quota.errors import BadInput, QuotaError, QuotaExceeded
from hub_config.quota.services import ledger
from hub_config.quota.settings import QuotaSettings, load_settings
from hub_config.quota.storage.models import AllocationState, Checkpoint, Warning_, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Charge:
    """Who a spawn or cluster will be charged to; ``team`` None means the personal allocation."""

    username: str
    team: str | None
    allocation_id: int | None


@lru_cache(maxsize=4)
def sessions_for(db_url: str) -> sessionmaker[Session]:
    """One session factory per database URL for the checks (the hub and the gateway call them
    in their own processes, with no quota service)."""
    from hub_config.quota.storage.db import session_factory

    return session_factory(db_url)


def _settings(settings: QuotaSettings | None) -> QuotaSettings:
    return settings or load_settings()


def _hub_tier(hub_groups: Iterable[str] | None) -> str | None:
    if hub_groups is None:
        return None
    from hub_config.policy import load_policy

    return load_policy().tier_of_groups(list(hub_groups))


def check_charge(
    s: Session,
    settings: QuotaSettings,
    username: str,
    team: str | None,
    gpus: float,
    hub_groups: Iterable[str] | None,
    what: str,
    now: dt.datetime,
) -> Charge:
    """Who pays for ``what`` (``gpus`` GPUs, for ``username`` on ``team`` or personally), or
    raise ``QuotaExceeded`` / ``BadInput``; in the caller's transaction (a base allocation or an
    IdP-asserted membership it creates is the caller's to commit)."""
    ops.check_username(username)
    if team in ("", None):
        tier = ops.tier_of(s, username, _hub_tier(hub_groups))
        a = ops.ensure_base_allocation(s, settings, username, tier, now)
        if a is None:
            raise QuotaExceeded(
                f"{what} refused: you have no allocation (tier {tier!r} has no base allocation)"
            )
        label = "your personal allocation"
        member = None
    else:
        ops.check_team_name(team)
        t = ops.team(s, team) if ops.team_exists(s, team) else None
        if t is None:
            raise BadInput(f"{what} refused: there is no team {team!r}")
        member = ops.membership(s, t, username)
        if member is None and hub_groups is not None:
            ops.sync_idp_teams(s, username, hub_groups, only=t.name)
            member = ops.membership(s, t, username)
        if member is None:
            raise BadInput(f"{what} refused: you are not a member of team {team!r}")
        a = ops.current_allocation(s, team_name=team, now=now)
        if a is None:
            raise QuotaExceeded(f"{what} refused: team {team!r} has no allocation")
        label = f"team {team!r}'s allocation"
    if ops.effective_state(a, now) == AllocationState.expired or not (
        a.period_start <= now < a.period_end
    ):
        raise QuotaExceeded(
            f"{what} refused: {label} expired on {a.period_end:%Y-%m-%d %H:%M} UTC; "
            "request a renewal in the quota service"
        )
    used_c, used_g = ops.allocation_usage(s, a)
    if used_c >= a.core_hours:
        raise QuotaExceeded(
            f"{what} refused: {label} is exhausted ({used_c:.4g} of {a.core_hours:.4g} core-hours "
            f"used until {a.period_end:%Y-%m-%d} UTC)"
        )
    if gpus > 0 and used_g >= a.gpu_hours:
        raise QuotaExceeded(
            f"{what} refused: {label} has no GPU-hours left ({used_g:.4g} of {a.gpu_hours:.4g} used)"
        )
    if member is not None:
        mc, mg = ledger.totals(s, a.period_start, a.period_end, username=username, team=team)
        if member.cap_core_hours is not None and mc >= member.cap_core_hours:
            raise QuotaExceeded(
                f"{what} refused: you reached your cap in team {team!r} "
                f"({mc:.4g} of {member.cap_core_hours:.4g} core-hours); ask a team admin"
            )
        if gpus > 0 and member.cap_gpu_hours is not None and mg >= member.cap_gpu_hours:
            raise QuotaExceeded(
                f"{what} refused: you reached your GPU cap in team {team!r} "
                f"({mg:.4g} of {member.cap_gpu_hours:.4g} GPU-hours)"
            )
    return Charge(username, team or None, a.id)


def check_spawn(
    username: str,
    profile: str,
    team: str | None = None,
    hub_groups: Iterable[str] | None = None,
    *,
    settings: QuotaSettings | None = None,
    now: dt.datetime | None = None,
) -> Charge:
    """Raise :class:`QuotaExceeded` (or ``BadInput`` for a team the user is not in) or say who pays."""
    from hub_config.policy import load_policy

    settings = _settings(settings)
    pol = load_policy()
    if profile not in pol.profiles:
        raise BadInput(f"unknown profile {str(profile)[:40]!r}")
    gpus = pol.profiles[profile].gpus
    with sessions_for(settings.db_url)() as s:
        charge = check_charge(
            s, settings, username, team, gpus, hub_groups, "server start", now or utcnow()
        )
        s.commit()  # keeps a base allocation created on first use
        return charge


def check_cluster(
    username: str,
    team: str | None = None,
    worker_gpus: float = 0,
    hub_groups: Iterable[str] | None = None,
    *,
    settings: QuotaSettings | None = None,
    now: dt.datetime | None = None,
    what: str = "Dask cluster",
) -> Charge:
    """The same question for a new Dask-Gateway cluster or a scale-up."""
    settings = _settings(settings)
    with sessions_for(settings.db_url)() as s:
        charge = check_charge(
            s, settings, username, team, worker_gpus, hub_groups, what, now or utcnow()
        )
        s.commit()
        return charge


# --------------------------------------------------------------------------- grace period
class GraceEnforcer:
    """Warn users whose charged allocation ran out while things run; stop them after the grace.

    It only stops servers and clusters (through the hub and gateway APIs); storage is never
    touched. Running things are read from the sampler's checkpoints, so it sees what is charged.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: QuotaSettings,
        stop_server: Callable[[str, str], None],
        stop_cluster: Callable[[str, str], None] | None = None,
    ):
        self.sessions, self.settings = sessions, settings
        self.stop_server, self.stop_cluster = stop_server, stop_cluster

    def run_once(self, now: dt.datetime | None = None) -> list[str]:
        """One pass; returns what it did (for logs and tests)."""
        now = now or utcnow()
        done: list[str] = []
        with self.sessions() as s:
            ops.expire_due(s, now)
            running: dict[tuple[str, str | None], list[Checkpoint]] = defaultdict(list)
            for cp in s.scalars(select(Checkpoint)):
                running[(cp.username, cp.team)].append(cp)
            open_warnings = {
                (w.username, w.team): w
                for w in s.scalars(
                    select(Warning_).where(
                        Warning_.cleared_at.is_(None), Warning_.stopped_at.is_(None)
                    )
                )
            }
            for (user, team), cps in running.items():
                gpus = max(cp.gpus for cp in cps)
                try:
                    check_charge(s, self.settings, user, team, gpus, None, "running", now)
                    reason = None
                except (QuotaExceeded, BadInput) as exc:
                    reason = str(exc).replace("running refused: ", "")
                w = open_warnings.pop((user, team), None)
                if reason is None:
                    if w is not None:
                        w.cleared_at = now
                        done.append(f"cleared {user}/{team}")
                    continue
                if w is None:
                    w = Warning_(
                        username=user,
                        team=team,
                        reason=reason[:500],
                        warned_at=now,
                        stop_after=now + dt.timedelta(seconds=self.settings.grace_period_s),
                    )
                    s.add(w)
                    ops.audit(
                        s,
                        "system",
                        "grace_warning",
                        f"user:{user}",
                        None,
                        {"team": team, "reason": reason[:500], "stop_after": ops.iso(w.stop_after)},
                    )
                    log.warning("quota: %s (%s) warned: %s", user, team, reason)
                    done.append(f"warned {user}/{team}")
                if now >= w.stop_after:
                    self._stop(user, cps, done)
                    w.stopped_at = now
                    ops.audit(
                        s,
                        "system",
                        "grace_stop",
                        f"user:{user}",
                        None,
                        {"team": team, "stopped": [cp.key for cp in cps]},
                    )
            for w in open_warnings.values():  # nothing runs any more
                w.cleared_at = now
            s.commit()
        return done

    def _stop(self, user: str, cps: list[Checkpoint], done: list[str]) -> None:
        clusters = set()
        for cp in cps:
            source, _, rest = cp.key.partition(":")
            if source == "hub" and cp.kind == "server":
                server = rest.split("/", 1)[1] if "/" in rest else ""
                self.stop_server(user, server)
                done.append(f"stopped server {user}/{server}")
            elif source == "gateway":
                clusters.add(rest.split(":", 1)[0])
        for c in sorted(clusters):
            if self.stop_cluster is not None:
                self.stop_cluster(user, c)
                done.append(f"stopped cluster {c}")


# --------------------------------------------------------------------------- hub hook
def spawn_check(spawner, tier: str, profile_name: str, profile) -> object:
    """``TierSpawnerMixin.spawn_checks`` entry: refuse (403) a spawn the allocation cannot pay.

    The team comes from the validated spawn options (``spawner.charge_team``) and is checked
    against the quota database here; the tier from the hub groups. Runs in a worker thread.
    """
    import asyncio

    from tornado import web

    team = getattr(spawner, "charge_team", "") or None
    groups = [g.name for g in spawner.user.groups]
    username = spawner.user.name

    def _run() -> None:
        try:
            check_spawn(username, profile_name, team, groups)
        except (QuotaExceeded, BadInput) as exc:
            err = web.HTTPError(403, str(exc), reason="Refused by quota")
            # JupyterHub shows an HTTPError's jupyterhub_message to the user as it is.
            err.jupyterhub_message = str(exc)  # type: ignore[attr-defined]
            raise err from None

    return asyncio.get_running_loop().run_in_executor(None, _run)


# --------------------------------------------------------------------------- gateway hook
def cluster_check(
    username: str, groups: list[str] | None, team: str | None, what: str
) -> Coroutine[Any, Any, None]:
    """``TierLimitsMixin.cluster_checks`` entry (hub_config.gateway): refuse a Dask cluster start
    or scale-up the allocation cannot pay, with the reason as the client's error message.

    ``groups`` are the hub groups of a new cluster's owner (None on a scale-up: the tier then
    comes from the quota database); ``team`` the cluster's ``team`` option, validated here.
    Runs in a worker thread (the check opens a database session)."""
    import asyncio

    from dask_gateway_server.backends.base import PublicException

    def _run() -> None:
        try:
            check_cluster(username, team, 0, groups, what=what)
        except QuotaError as exc:
            raise PublicException(str(exc)) from None

    return asyncio.to_thread(_run)
