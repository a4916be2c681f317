"""``python -m hub_config.oidc_dev``: run the development OIDC provider on loopback."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import sys
from pathlib import Path

from hub_config.oidc_dev.provider import ProviderConfig, make_app
from hub_config.oidc_dev.users import DEMO_USERS_FILE, load_users
from platform_lib import env_contract

#: Set (to "development") only by the Helm chart's development-provider pod.
IN_DEV_CLUSTER_ENV = env_contract.OIDC_DEV_IN_CLUSTER


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hub_config.oidc_dev",
        description=(
            "Development OpenID Connect provider with demo MyST-style accounts. Loopback only; "
            "never part of a production deployment."
        ),
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="loopback address to bind (default %(default)s)"
    )
    p.add_argument("--port", type=int, required=True, help="TCP port")
    p.add_argument("--issuer", help="issuer URL (default http://HOST:PORT)")
    p.add_argument(
        "--users", type=Path, default=DEMO_USERS_FILE, help="users YAML (default: the demo users)"
    )
    p.add_argument("--client-id", required=True, help="the one registered client (the hub)")
    secret = p.add_mutually_exclusive_group(required=True)
    secret.add_argument("--client-secret", help="its secret (visible in ps; prefer the file)")
    secret.add_argument("--client-secret-file", type=Path, help="file holding its secret")
    p.add_argument(
        "--redirect-uri", action="append", required=True, help="allowed redirect URI (repeatable)"
    )
    p.add_argument(
        "--post-logout-redirect-uri",
        action="append",
        default=[],
        help="allowed post-logout redirect URI (repeatable)",
    )
    p.add_argument("--state-dir", type=Path, help="folder keeping the signing key across restarts")
    p.add_argument("--id-token-ttl", type=float, default=600.0, help="ID token lifetime, seconds")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The one exception (issue 6): the Helm chart's kind/minikube values run this provider in
    # its own pod, which other pods reach over the pod network. The chart sets this variable only
    # in that pod and refuses to render the provider at all in production mode.
    in_dev_cluster = os.environ.get(IN_DEV_CLUSTER_ENV) == "development"
    try:
        if not (ipaddress.ip_address(args.host).is_loopback or in_dev_cluster):
            raise ValueError
    except ValueError:
        print(
            f"error: --host {args.host!r} is not a loopback address; the development provider "
            "never listens beyond this machine",
            file=sys.stderr,
        )
        return 2
    try:
        users = load_users(args.users)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.client_secret_file:
        try:
            args.client_secret = args.client_secret_file.read_text().strip()
        except OSError as exc:
            print(f"error: cannot read --client-secret-file: {exc}", file=sys.stderr)
            return 2
        if not args.client_secret:
            print("error: --client-secret-file is empty", file=sys.stderr)
            return 2
    issuer = args.issuer or f"http://{args.host}:{args.port}"
    config = ProviderConfig(
        issuer=issuer,
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=args.redirect_uri,
        post_logout_redirect_uris=args.post_logout_redirect_uri,
        users=users,
        state_dir=args.state_dir,
        id_token_ttl=args.id_token_ttl,
    )
    logging.basicConfig(level=logging.INFO, format="[oidc-dev %(asctime)s] %(message)s")

    async def serve() -> None:
        app = make_app(config)
        server = app.listen(args.port, address=args.host)
        logging.info(
            "development OIDC provider %s listening on %s:%d (%d users)",
            issuer,
            args.host,
            args.port,
            len(users),
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.stop()
        app.settings["oidc_state"].save()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
