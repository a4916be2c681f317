"""The usage sampler: what runs now, according to the hub and to Dask-Gateway.

Each source (:mod:`.sources`) returns :class:`ledger.Running` items; :func:`ledger.integrate` charges them. Run it
inside the quota service (the default) or alone: ``python -m hub_config.quota.services.sampler``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import signal
import sys
import time
from collections.abc import Sequence

from sqlalchemy.orm import Session, sessionmaker

from hub_config.quota.services import ledger
from hub_config.quota.services.sources import (
    GatewayDatabaseSource,
    HubSource,
    Source,
)
from hub_config.quota.settings import QuotaSettings
from hub_config.quota.storage.models import utcnow

log = logging.getLogger(__name__)


def _validated_teams(s: Session, observed: list[ledger.Running]) -> list[ledger.Running]:
    """Charge a team only for its members: a forged or not-yet-validated team option (a spawn
    the hub is still checking, or refused) is charged to the user's personal allocation."""

    from sqlalchemy import select

    from hub_config.quota.storage.models import Membership, Team, User

    wanted = {(o.username, o.team) for o in observed if o.team}
    if not wanted:
        return observed
    ok = set(
        s.execute(
            select(User.name, Team.name)
            .join(Membership, Membership.user_id == User.id)
            .join(Team, Membership.team_id == Team.id)
            .where(Team.name.in_({t for _, t in wanted}))
        ).all()
    )
    return [
        o if not o.team or (o.username, o.team) in ok else dataclasses.replace(o, team=None)
        for o in observed
    ]


class Sampler:
    def __init__(self, sessions: sessionmaker[Session], sources: Sequence[Source], interval: float):
        self.sessions, self.sources, self.interval = sessions, list(sources), float(interval)

    def sample_once(self, now: dt.datetime | None = None) -> dict[str, float]:
        """One pass over every source; a failing source is skipped and caught up next time."""
        charged: dict[str, float] = {}
        for src in self.sources:
            try:
                observed = src.observe()
            except Exception as exc:
                log.warning("quota sampler: source %s failed: %s", src.name, exc)
                continue
            with self.sessions() as s:
                observed = _validated_teams(s, observed)
                charged.update(
                    ledger.integrate(s, src.name, observed, now or utcnow(), self.interval)
                )
                s.commit()
        return charged

    def run(self, duration: float | None = None) -> None:
        """Sample every ``interval`` seconds until SIGTERM/SIGINT (or ``duration`` seconds)."""
        stop = {"now": False}

        def _stop(*_):
            stop["now"] = True

        signal.signal(signal.SIGTERM, _stop)
        t0 = time.monotonic()
        next_at = t0
        while not stop["now"] and (duration is None or time.monotonic() - t0 < duration):
            self.sample_once()
            next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))


def build_sources(hub=None, settings: QuotaSettings | None = None) -> list[Source]:
    """The hub, and the gateway as it runs here: its database on one machine, the Kubernetes
    API (DaskClusters and their pods) in the chart."""
    sources: list[Source] = []
    if hub is not None:
        sources.append(HubSource(hub))
    if settings is not None and settings.gateway_db_url:
        sources.append(GatewayDatabaseSource(settings.gateway_db_url))
    if settings is not None and settings.gateway_kube_namespace:
        from hub_config.quota.services.kube import KubeAPI, KubernetesGatewaySource

        api = (
            KubeAPI(settings.kube_api_url, settings.kube_token_file)
            if settings.kube_api_url
            else KubeAPI.in_cluster()
        )
        sources.append(
            KubernetesGatewaySource(
                api, settings.gateway_kube_namespace, settings.gateway_kube_instance
            )
        )
    return sources


def main(argv: Sequence[str] | None = None) -> int:
    from hub_config.quota.settings import load_settings
    from hub_config.quota.storage.db import session_factory
    from hub_config.quota.storage.hubapi import HubClient

    p = argparse.ArgumentParser(
        prog="python -m hub_config.quota.services.sampler",
        description="Sample running servers and Dask clusters into the usage ledger.",
    )
    p.add_argument("--db-url", help="quota database (default: settings / $ROMAN_QUOTA_DB_URL)")
    p.add_argument("--interval", type=float, help="seconds between samples")
    p.add_argument("--hub-api", help="hub API URL (default $JUPYTERHUB_API_URL)")
    p.add_argument("--no-hub", action="store_true", help="do not sample the hub")
    p.add_argument("--gateway-db-url", help="dask-gateway-server database URL")
    p.add_argument(
        "--gateway-kube-namespace",
        help="on Kubernetes: namespace of the gateway's clusters (read from the API)",
    )
    p.add_argument("--gateway-kube-instance", help="on Kubernetes: gateway instance label")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sampler %(message)s")
    settings = load_settings(
        db_url=args.db_url,
        sample_interval_s=args.interval,
        gateway_db_url=args.gateway_db_url,
        gateway_kube_namespace=args.gateway_kube_namespace,
        gateway_kube_instance=args.gateway_kube_instance,
    )
    hub = None if args.no_hub else HubClient(args.hub_api)
    sampler = Sampler(
        session_factory(settings.db_url), build_sources(hub, settings), settings.sample_interval_s
    )
    sampler.run(args.duration)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
