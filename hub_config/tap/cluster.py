"""The TAP service's processes in the Helm chart's pods: PostgreSQL, DaCHS, the index publisher.

On one machine a supervisor runs PostgreSQL and DaCHS side by side on loopback
(:class:`~hub_config.tap.service.TapService`). The chart runs each in a pod of its own from the tap
image (``images/tap``: the hub image plus Debian's DaCHS, PostgreSQL and pgSphere), so each gets a
foreground command here that sets up what it needs and then ``exec``s the server, leaving
restarts to Kubernetes. The code is what the one-machine platform runs, pointed at the cluster's
addresses (so it lives in :mod:`hub_config.tap`, which imports nothing of :mod:`hub_config.local`):

* ``postgres``: ``initdb`` on first start (the superuser's password from ``ROMAN_TAP_PG_PASSWORD``,
  scram for every connection, TCP included), then the server on the given address (in a pod: all
  of them; the chart's NetworkPolicy decides who reaches it).
* ``dachs``: waits for the database (``ROMAN_TAP_PG_URL`` + password), runs
  :meth:`TapService.setup` against it (idempotent: a new pod on a database set up before only
  makes DaCHS's files again, its role passwords derived from ``ROMAN_TAP_SECRET``), then DaCHS's
  server through ``dachs_serve.py``, as locally.
* ``publish``: :class:`~hub_config.tap.publisher.IndexPublisher` (the one-machine component's
  too) on the store the chart configures (``ROMAN_DATA_URL`` and friends), every
  ``ROMAN_TAP_PUBLISH_INTERVAL`` seconds.

:func:`attach_from_env` is how the hub-facing proxy (:mod:`hub_config.tap.proxy`) finds the
instance in either set-up.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from platform_lib import env_contract

from .publisher import IndexPublisher
from .schema import DEFAULT_MAXREC, JOB_LIFETIME_S, MAX_RUNNING_JOBS, TapError
from .service import LAUNCHER, SYSTEM_PYTHON, TapService

log = logging.getLogger("roman_platform.tap")

__all__ = ["attach_from_env", "database_from_url", "main"]

#: seconds the DaCHS pod waits for its database before it gives up (Kubernetes restarts it)
DATABASE_WAIT_S = 300.0


def database_from_url(url: str) -> dict[str, object]:
    """``postgresql://user@host:port/dbname`` -> host, port, user, dbname (password: not here)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise TapError(f"not a PostgreSQL URL (postgresql://user@host:port/dbname): {url!r}")
    if parts.password:
        raise TapError(
            f"{env_contract.TAP_PG_URL} must not hold the password: give it in "
            f"{env_contract.TAP_PG_PASSWORD} (from a Secret)"
        )
    dbname = parts.path.lstrip("/") or "gavo"
    return {
        "host": parts.hostname,
        "port": parts.port or 5432,
        "user": unquote(parts.username or "postgres"),
        "dbname": dbname,
    }


def attach_from_env(env: Mapping[str, str] | None = None, *, secret: bool = True) -> TapService:
    """A handle on the running instance the environment names.

    Locally: ``ROMAN_TAP_ROOT``/``_PORT``/``_PG_PORT`` (loopback). In the chart:
    ``ROMAN_TAP_DACHS_URL`` (DaCHS's Service) and ``ROMAN_TAP_PG_URL`` + ``ROMAN_TAP_PG_PASSWORD``.
    ``secret=False`` (the publisher) needs no ``ROMAN_TAP_SECRET``: it only writes rows.
    """
    env = os.environ if env is None else env
    missing = [k for k in (env_contract.TAP_SECRET,) if secret and not env.get(k)]
    dachs = env.get(env_contract.TAP_DACHS_URL, "")
    if not dachs and not env.get(env_contract.TAP_PG_URL):
        missing += [
            k
            for k in (env_contract.TAP_ROOT, env_contract.TAP_PORT, env_contract.TAP_PG_PORT)
            if not env.get(k)
        ]
        if missing:
            raise TapError(f"the TAP instance is not named: set {', '.join(missing)}")
        return TapService.attach(
            env[env_contract.TAP_ROOT],
            port=int(env[env_contract.TAP_PORT]),
            pg_port=int(env[env_contract.TAP_PG_PORT]),
            secret=env.get(env_contract.TAP_SECRET, ""),
        )
    missing += [
        k for k in (env_contract.TAP_PG_URL, env_contract.TAP_PG_PASSWORD) if not env.get(k)
    ]
    if missing:
        raise TapError(f"the TAP instance is not named: set {', '.join(missing)}")
    tap = TapService.attach(
        env.get(env_contract.TAP_ROOT) or tempfile.gettempdir(),
        port=0,
        pg_port=0,
        secret=env.get(env_contract.TAP_SECRET, ""),
        server_url=dachs or None,
    )
    use_database(tap, env[env_contract.TAP_PG_URL], env[env_contract.TAP_PG_PASSWORD])
    return tap


def use_database(tap: TapService, url: str, password: str) -> None:
    db = database_from_url(url)
    tap.pg_host, tap.pg_port = str(db["host"]), int(str(db["port"]))
    tap.pg_user, tap.pg_dbname = str(db["user"]), str(db["dbname"])
    tap.pg_password = password


def wait_for_database(tap: TapService, timeout: float = DATABASE_WAIT_S) -> None:
    """Until the server accepts the superuser (the database's pod may start after this one)."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with tap._admin_conn("postgres"):
                return
        except psycopg.OperationalError as exc:
            if "password authentication failed" in str(exc) or time.monotonic() > deadline:
                raise TapError(f"PostgreSQL at {tap.pg_host}:{tap.pg_port}: {exc}") from None
            log.info("tap: waiting for PostgreSQL at %s:%s", tap.pg_host, tap.pg_port)
            time.sleep(2)


# ---------------------------------------------------------------------------- the commands
def run_postgres(args: argparse.Namespace, env: Mapping[str, str]) -> None:
    """initdb once (scram, the superuser's password from the environment), then the server."""
    import subprocess

    password = env.get(env_contract.TAP_PG_PASSWORD, "")
    if not password:
        raise TapError(f"{env_contract.TAP_PG_PASSWORD} is not set (the chart's TAP secret)")
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not bins:
        raise TapError("PostgreSQL server binaries not installed (Debian package postgresql)")
    bindir = bins[-1].parent
    data = Path(args.data)
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        data.chmod(0o700)
        with tempfile.NamedTemporaryFile("w", prefix="pw-", dir=args.socket_dir) as pwfile:
            pwfile.write(password + "\n")
            pwfile.flush()
            proc = subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile.name}",
                    "-E",
                    "UTF8",
                ],
                capture_output=True,
                text=True,
                timeout=300,
            )
        if proc.returncode != 0:
            raise TapError(f"initdb failed: {proc.stderr.strip()[-800:]}")
        with (data / "pg_hba.conf").open("a") as hba:
            # other pods connect over TCP; every connection needs the password (scram)
            hba.write("host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n")
        log.info("tap: made the PostgreSQL cluster in %s", data)
    argv = [
        str(bindir / "postgres"),
        "-D",
        str(data),
        "-c",
        f"listen_addresses={args.listen}",
        "-c",
        f"port={args.port}",
        "-c",
        f"unix_socket_directories={args.socket_dir}",
    ]
    sys.stdout.flush()
    os.execv(argv[0], argv)


def run_dachs(args: argparse.Namespace, env: Mapping[str, str]) -> None:
    """Set DaCHS up against the database (idempotent), then run its server in the foreground."""
    if not env.get(env_contract.TAP_SECRET):
        raise TapError(f"{env_contract.TAP_SECRET} is not set (the chart's TAP secret)")
    if not env.get(env_contract.TAP_PG_URL) or not env.get(env_contract.TAP_PG_PASSWORD):
        raise TapError(
            f"{env_contract.TAP_PG_URL} and {env_contract.TAP_PG_PASSWORD} name the database"
        )
    root = Path(args.root)
    tap = TapService.attach(
        root,
        port=args.port,
        pg_port=0,
        secret=env[env_contract.TAP_SECRET],
        server_url=env.get(env_contract.TAP_DACHS_URL) or None,
    )
    use_database(tap, env[env_contract.TAP_PG_URL], env[env_contract.TAP_PG_PASSWORD])
    tap.bind = args.bind
    tap.default_maxrec = args.maxrec
    tap.job_lifetime, tap.max_running = args.job_lifetime, args.max_running
    tap.log_dir.mkdir(parents=True, exist_ok=True)
    wait_for_database(tap, args.wait)
    tap.setup()
    log.info("tap: DaCHS set up on %s:%s; serving %s", tap.pg_host, tap.pg_port, tap.url)
    sys.stdout.flush()
    os.execve(SYSTEM_PYTHON, [SYSTEM_PYTHON, str(LAUNCHER)], tap._env())


def run_publish(args: argparse.Namespace, env: Mapping[str, str]) -> None:
    """Publish the store's index whenever it changes (``--once``: one look, for tests)."""
    if not env.get(env_contract.DATA_URL):
        raise TapError(f"{env_contract.DATA_URL} is not set: no store to publish")
    tap = attach_from_env(env, secret=False)
    wait_for_database(tap, args.wait)  # a wrong password stops here, with the reason
    publisher = IndexPublisher(tap, dict(env))
    interval = float(env.get(env_contract.TAP_PUBLISH_INTERVAL) or args.interval)
    while True:
        n = publisher.publish_if_changed()
        if args.once:
            print(f"published {n if n is not None else 'nothing'}", flush=True)
            return
        time.sleep(interval)


def parser() -> argparse.ArgumentParser:
    """The pods' command line (the chart's templates pass these options; tests parse them)."""
    p = argparse.ArgumentParser(
        prog="python -m hub_config.tap.cluster",
        description="The TAP service's processes in the Helm chart's pods (the tap image).",
    )
    sub = p.add_subparsers(dest="command", required=True)
    pg = sub.add_parser("postgres", help="PostgreSQL with pgSphere: initdb once, then the server")
    pg.add_argument("--data", default="/var/lib/postgresql/data/pgdata", help="data folder")
    pg.add_argument("--port", type=int, default=5432)
    pg.add_argument("--listen", default="*", help="listen_addresses (default: all)")
    pg.add_argument("--socket-dir", default="/tmp", help="the server's socket folder")
    dachs = sub.add_parser("dachs", help="DaCHS: set up against the database, then serve TAP")
    dachs.add_argument("--root", default="/var/lib/roman-tap", help="DaCHS's files (writable)")
    dachs.add_argument("--port", type=int, default=8080)
    dachs.add_argument("--bind", default="0.0.0.0", help="address DaCHS binds (default: all)")
    dachs.add_argument("--maxrec", type=int, default=DEFAULT_MAXREC, help="default MAXREC")
    dachs.add_argument(
        "--job-lifetime",
        type=int,
        default=JOB_LIFETIME_S,
        help="seconds an async job and its result are kept",
    )
    dachs.add_argument(
        "--max-running", type=int, default=MAX_RUNNING_JOBS, help="TAP jobs run at once"
    )
    dachs.add_argument("--wait", type=float, default=DATABASE_WAIT_S, help="seconds for the db")
    pub = sub.add_parser("publish", help="publish the store's product index when it changes")
    pub.add_argument("--interval", type=float, default=60.0, help="seconds between looks")
    pub.add_argument("--once", action="store_true", help="one look, then exit")
    pub.add_argument("--wait", type=float, default=DATABASE_WAIT_S, help="seconds for the db")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run = {"postgres": run_postgres, "dachs": run_dachs, "publish": run_publish}[args.command]
    try:
        run(args, os.environ)
    except TapError as exc:
        print(f"tap {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
