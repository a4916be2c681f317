"""``roman-platform up``: start the whole platform on this machine, stop it with Ctrl-C."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub_config.settings import PlatformSettings

EPILOG = """\
Configuration: an optional platform.yaml (in the current folder, or --config FILE); every
setting has a working default. See docs/local-platform.md for the settings.

State: hub database, secrets, gateway database, logs and one working folder per user live in
the state folder (default ./.state, created private); delete it for a complete reset.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "up",
        help="start the local platform (JupyterHub, proxy, Dask-Gateway); Ctrl-C stops it",
        description=(
            "Start the Roman Science Platform on 127.0.0.1: a real JupyterHub behind\n"
            "configurable-http-proxy, JupyterLab servers as local processes, and a\n"
            "dask-gateway-server authenticating users through the hub. Prints the URL and\n"
            "the demo logins; Ctrl-C (or SIGTERM) stops every process it started."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="platform.yaml to use (default: ./platform.yaml if present)",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="state folder (overrides state_dir in the config; default ./.state)",
    )
    p.add_argument(
        "--ready-timeout",
        type=float,
        default=120.0,
        help="seconds each component may take to become ready (default 120)",
    )
    p.add_argument(
        "--exit-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop by itself after SECONDS once ready (benchmarks, smoke checks)",
    )
    p.set_defaults(func=handle_up)
    _register_accounts(subparsers)


def _register_accounts(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "accounts",
        help="list or remove the system accounts the local platform made for its users",
        description=(
            "Run as root, the local platform gives every hub user a system account\n"
            "(roman-<name>) and runs their server and Dask workers as it. Accounts stay when\n"
            "a state folder is deleted; list them, or remove one whose user is gone."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="accounts_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="the platform's accounts: name, uid, hub user, processes")
    rm = sub.add_parser(
        "remove",
        help="remove accounts (refused while a server or cluster runs as one)",
    )
    rm.add_argument("names", nargs="+", metavar="ACCOUNT", help="e.g. roman-alice")
    p.set_defaults(func=handle_accounts)


def handle_accounts(args: argparse.Namespace) -> int:
    from hub_config.local.accounts import (
        MARKER,
        AccountError,
        account_processes,
        platform_accounts,
        remove_account,
    )

    if args.accounts_command == "list":
        entries = platform_accounts()
        if not entries:
            print("no accounts made by the platform on this machine")
        for e in entries:
            user = e.pw_gecos[len(MARKER) :].strip() or "?"
            print(
                f"{e.pw_name:<32} uid {e.pw_uid:<6} hub user {user:<24} "
                f"{len(account_processes(e))} process(es)"
            )
        return 0
    if os.geteuid() != 0:
        print("roman-platform accounts remove: needs root (userdel)", file=sys.stderr)
        return 2
    code = 0
    for name in args.names:
        try:
            remove_account(name)
        except AccountError as exc:
            print(f"roman-platform accounts remove: {exc}", file=sys.stderr)
            code = 1
        else:
            print(
                f"removed {name}; its homes (<state>/users/<name> of each state folder it "
                "used) now belong to no account: delete them, since a later account may be "
                "given the same uid"
            )
    return code


def _login_lines(s: PlatformSettings, logins: str) -> list[str]:
    """Demo logins: the OIDC provider's accounts (issue 4), else the demo authenticator's."""
    oidc = getattr(s, "oidc", None)
    if not oidc:
        return [
            f"  demo logins : {logins} (admins: {', '.join(s.demo.admin_users) or 'none'})",
            f"  password    : {s.demo.password}",
        ]
    from hub_config.local.oidc import demo_logins

    lines = [f"  sign in     : MyST (development OIDC provider at {oidc['issuer']})"]
    lines += [
        f"    {name:<14} {password:<20} {what}"
        for name, password, what in demo_logins(oidc["users_file"])
    ]
    return lines


def _accounts_lines(p: Any) -> list[str]:
    """Which OS accounts users run as; single-account mode is said plainly (issue 20)."""
    import getpass

    accounts = p.settings.accounts
    if accounts is not None and accounts.mode == "system":
        return [
            f"  accounts    : one system account per user ({accounts.prefix}<name>, made at "
            "first start); homes 0700 in the state folder's users/",
        ]
    why = accounts.reason if accounts is not None and accounts.reason else "not running as root"
    return [
        f"  accounts    : SINGLE-ACCOUNT MODE ({why}): every user's server and Dask cluster "
        f"run as OS user '{getpass.getuser()}';",
        "                users' S3 data are separated (own keys), their home folders and "
        "kernels are NOT - for development and demonstration only",
    ]


def _environment_lines() -> list[str]:
    """Which of the policy's environments this machine can start (docs/environments.md)."""
    from hub_config.environments import EnvironmentUnavailable, local_runtime
    from hub_config.policy import load_policy

    policy = load_policy()
    if not policy.environments:
        return []
    parts = []
    for env in policy.environments:
        try:
            runtime = local_runtime(env)
        except EnvironmentUnavailable:
            where = f"not here: python -m hub_config.environments make-local {env.name}"
        else:
            where = "this venv" if runtime.prefix is None else f"overlay {runtime.prefix}"
        parts.append(f"{env.name}{' (default)' if env.default else ''} [{where}]")
    return [f"  environments: {'; '.join(parts)}"]


def _tap_lines(p: Any) -> list[str]:
    """Where TAP is, or why it is not running (docs/data.md)."""
    from platform_lib import env_contract

    url = p.user_env.get(env_contract.TAP_URL)
    if url:
        return [f"  TAP/ObsCore : {url}  (pyvo/astroquery/TOPCAT with a hub token)"]
    if getattr(p.config.data, "tap", None) is False:
        return ["  TAP/ObsCore : off (data.tap: false)"]
    from hub_config.tap.service import dachs_available

    return [f"  TAP/ObsCore : off ({dachs_available() or 'no data store'})"]


def _banner(supervisor: object) -> None:
    from hub_config.local.supervisor import Supervisor

    assert isinstance(supervisor, Supervisor)
    p = supervisor.platform
    s = p.settings
    logins = ", ".join(s.demo.users + s.demo.admin_users)
    lines = [
        "",
        f"Roman Science Platform is up at {p.public_url}/ "
        f"(ready in {supervisor.timings.get('total', 0):.1f} s)",
        *_login_lines(s, logins),
        f"  Dask-Gateway: {s.gateway.address}",
        *_tap_lines(p),
        *_environment_lines(),
        *_accounts_lines(p),
        f"  state folder: {p.state.root}  (logs in {p.state.logs_dir})",
        "  Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


def handle_up(args: argparse.Namespace) -> int:
    import logging

    from hub_config.local.config import DEFAULT_CONFIG_NAME, ConfigError, load_config
    from hub_config.local.resolve import PlatformError
    from hub_config.local.state import StateError
    from hub_config.local.supervisor import Supervisor, prepare

    try:
        config = load_config(args.config, required=args.config is not None)
    except ConfigError as exc:
        print(f"roman-platform up: {exc}", file=sys.stderr)
        return 2
    from hub_config.policy import PolicyError, load_policy

    try:
        load_policy()  # the hub reads it at every login: refuse to start rather than 500 then
    except PolicyError as exc:
        print(f"roman-platform up: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level,
        format="[%(asctime)s %(name)s %(levelname)s] %(message)s",
        datefmt="%H:%M:%S",
    )
    source = str(args.config) if args.config else DEFAULT_CONFIG_NAME
    state_dir = args.state_dir or config.state_dir or Path(".state")
    # Everything the platform and its children write from now on (the hub, quota and gateway
    # databases and their -wal/-shm files, logs) is private to this account (issue 20).
    os.umask(0o077)
    try:
        platform = prepare(config, state_dir, source)
    except (PlatformError, StateError) as exc:
        print(f"roman-platform up: {exc}", file=sys.stderr)
        return 2
    supervisor = Supervisor(platform, ready_timeout=args.ready_timeout)
    return supervisor.run(on_ready=_banner, exit_after=args.exit_after)
