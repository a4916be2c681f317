"""The quota service: a JupyterHub service (HubOAuth) with pages and a JSON API.

This module is the entry point; the shared state is :mod:`.app`; the HTTP layer is :mod:`.handlers`, the
rules are :mod:`.services`, the database and outside systems :mod:`.storage`.

Run by the hub (see :mod:`hub_config.quota.hub`) as ``python -m hub_config.quota.service``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from urllib.parse import urlparse

from tornado import ioloop
from tornado.httpserver import HTTPServer

from hub_config.quota.app import QuotaApp
from hub_config.quota.background import start_background
from hub_config.quota.handlers.routes import make_app
from hub_config.quota.settings import QuotaSettings, load_settings

log = logging.getLogger("quota")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hub_config.quota.service",
        description="The quota service (run by JupyterHub as a service).",
    )
    p.add_argument("--settings", help="quota settings YAML (default $ROMAN_QUOTA_SETTINGS)")
    p.add_argument("--db-url", help="quota database URL (overrides settings)")
    p.add_argument("--no-sampler", action="store_true", help="do not sample usage in this process")
    p.add_argument("--no-enforce", action="store_true", help="do not run grace-period enforcement")
    p.add_argument("--sample-interval", type=float)
    p.add_argument("--grace-period", type=float)
    p.add_argument("--enforce-interval", type=float)
    p.add_argument("--gateway-db-url")
    p.add_argument("--gateway-url")
    p.add_argument(
        "--gateway-kube-namespace",
        help="on Kubernetes: namespace of the gateway's clusters, read for usage",
    )
    p.add_argument("--gateway-kube-instance", help="on Kubernetes: gateway instance label")
    p.add_argument("--homes-dir", help="local platform: folder of user homes, measured for storage")
    p.add_argument("--storage-interval", type=float, help="seconds between storage measurements")
    return p


def settings_from_args(args: argparse.Namespace) -> QuotaSettings:
    return load_settings(
        args.settings,
        db_url=args.db_url,
        sample_interval_s=args.sample_interval,
        grace_period_s=args.grace_period,
        enforce_interval_s=args.enforce_interval,
        gateway_db_url=args.gateway_db_url,
        gateway_url=args.gateway_url,
        gateway_kube_namespace=args.gateway_kube_namespace,
        gateway_kube_instance=args.gateway_kube_instance,
        homes_dir=args.homes_dir,
        storage_interval_s=args.storage_interval,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s quota %(levelname)s %(message)s")
    settings = settings_from_args(args)
    from hub_config.quota.storage.hubapi import HubClient

    hub = HubClient()
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"))
    q = QuotaApp(settings, hub, os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/quota/"))
    server = HTTPServer(make_app(q), xheaders=True, max_body_size=8 * 1024 * 1024)
    server.listen(url.port or 80, url.hostname or "127.0.0.1")
    log.info("quota service on %s (db %s)", url.geturl(), settings.db_url.split("@")[-1])
    start_background(q, sample=not args.no_sampler, enforce=not args.no_enforce)
    ioloop.IOLoop.current().start()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
