"""The platform's TAP/ObsCore service: GAVO DaCHS on a PostgreSQL server of its own.

DaCHS (Debian's ``python3-gavo``, the field's standard TAP server) serves ``ivoa.obscore`` and
``roman.products`` (every product of the store in ObsCore form, pgSphere footprints with a GiST
index) by ADQL over IVOA TAP, so pyvo, astroquery and TOPCAT work unchanged.

Who sees what is decided in PostgreSQL, not in a form: ``roman.products`` has row-level security
(public rows, the viewer's own and the viewer's teams' ``team`` rows), and ``ivoa.obscore`` is a
``security_invoker`` view so the policy applies through it too (the RD and the policy:
:mod:`hub_config.tap.schema`). DaCHS's query role is not the table owner, so every ADQL
query is subject to the policy; ``dachs_serve.py`` tells PostgreSQL who the viewer is from
credentials DaCHS has verified. The platform creates one DaCHS account per hub user
(:meth:`TapService.grant`, password derived from a secret only the platform holds) with the
user's teams as DaCHS groups, so only the platform can query as a user (accounts and rows:
:mod:`hub_config.tap.catalog`).

This module starts and stops the two processes. The PostgreSQL server is password-protected
(scram) and listens on 127.0.0.1 only; DaCHS binds 127.0.0.1. ``python -m hub_config.tap.service
FOLDER`` runs one in the foreground; :mod:`hub_config.local.tap_platform` runs it in the
one-machine platform; :mod:`hub_config.tap.cluster` runs the same set-up in the chart's pods, so
it lives in the package both set-ups share, not in :mod:`hub_config.local`.

Size: about 440 lines, one class: :class:`TapService` owns both processes and the idempotent first
set-up they share (PostgreSQL's cluster, DaCHS's files and tables), which the chart's pods run too;
splitting it would spread one start-up sequence over modules.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from hub_config.processes import ComponentError, ManagedProcess, free_port, http_ready
from platform_lib import env_contract

from .catalog import TapCatalog, publish_index
from .schema import (
    DACHS_PROFILES,
    DEFAULT_MAXREC,
    JOB_LIFETIME_S,
    MAX_RUNNING_JOBS,
    RD_NAME,
    RESOURCE_DESCRIPTOR,
    VISIBILITY_POLICY,
    TapError,
    dachs_settings,
)
from .upgrade import SAVED_TABLE, apply_table_definition, record_definition

log = logging.getLogger("roman_platform.tap")

__all__ = ["TapService", "dachs_available"]

SYSTEM_PYTHON = "/usr/bin/python3"
LAUNCHER = Path(__file__).with_name("dachs_serve.py")
#: key of the advisory lock (in the server's ``postgres`` database) that serialises set-ups
SETUP_LOCK = 0x524D4E0001


def dachs_available() -> str | None:
    """None if DaCHS and pgSphere are installed, else what is missing (for skips and errors)."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gavo"], capture_output=True)
    if probe.returncode != 0:
        return "GAVO DaCHS not installed (Debian package python3-gavo; scripts/system-deps.sh)"
    if not list(Path("/usr/share/postgresql").glob("*/extension/pg_sphere.control")):
        return "pgSphere not installed (Debian package postgresql-15-pgsphere)"
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        return "PostgreSQL server binaries not installed (Debian package postgresql)"
    return None


class TapService(TapCatalog):
    """DaCHS + PostgreSQL under ``root`` (created on first start, reused after).

    ``pg_dir`` puts the PostgreSQL cluster elsewhere: run as root, PostgreSQL runs as the
    ``postgres`` account, which cannot enter a private (0700) state folder, so the platform
    gives it a folder of its own under ``postgres``'s home
    (:func:`hub_config.local.tap_platform.platform_pg_dir`).
    """

    name = "tap"
    #: DaCHS's async settings (``[async]`` in gavo.rc); the chart's pod sets them from values
    job_lifetime: int = JOB_LIFETIME_S
    max_running: int = MAX_RUNNING_JOBS

    def __init__(
        self,
        root: Path,
        *,
        port: int = 0,
        pg_port: int = 0,
        secret: str | None = None,
        log_dir: Path | None = None,
        default_maxrec: int = DEFAULT_MAXREC,
        pg_dir: Path | None = None,
    ) -> None:
        self.root = Path(root)
        self.pg_dir = Path(pg_dir) if pg_dir is not None else self.root / "pg"
        self.port = port or free_port()
        self.pg_port = pg_port or free_port()
        self.log_dir = Path(log_dir or self.root / "logs")
        self.default_maxrec = default_maxrec
        self.bind = "127.0.0.1"
        self.server_url: str | None = None
        self._secret_file = self.root / "secret"
        self._secret = secret
        self._dachs: ManagedProcess | None = None
        self._pg_running = False
        missing = dachs_available()
        if missing:
            raise TapError(missing)
        self.bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))[-1].parent

    @classmethod
    def attach(
        cls,
        root: Path | str,
        *,
        port: int,
        pg_port: int,
        secret: str,
        server_url: str | None = None,
    ) -> TapService:
        """A handle on an instance another process runs (the hub-facing proxy): grants, rows.

        ``server_url``: DaCHS's address when it is not this machine's loopback (the chart's
        DaCHS Service); the database is then set with :attr:`pg_host` and its friends.
        """
        self = cls.__new__(cls)
        self.root = Path(root)
        self.port, self.pg_port = port, pg_port
        self.bind = "127.0.0.1"
        self.server_url = server_url.rstrip("/") if server_url else None
        self.log_dir = self.root / "logs"
        self.default_maxrec = DEFAULT_MAXREC
        self._secret_file = self.root / "secret"
        self._secret = secret
        self._dachs = None
        self._pg_running = False
        return self

    def proxy_env(self) -> dict[str, str]:
        """What the hub-facing proxy (:mod:`hub_config.tap.proxy`) needs to attach."""
        return {
            env_contract.TAP_ROOT: str(self.root),
            env_contract.TAP_PORT: str(self.port),
            env_contract.TAP_PG_PORT: str(self.pg_port),
            env_contract.TAP_SECRET: self.secret,
        }

    # ------------------------------------------------------------------ endpoint and environment
    @property
    def url(self) -> str:
        """The TAP endpoint (what ``pyvo.dal.TAPService`` takes)."""
        return f"{self.server_url or f'http://127.0.0.1:{self.port}'}/tap"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
        env["GAVOSETTINGS"] = str(self.root / "gavo.rc")
        env["GAVOCUSTOM"] = str(self.root / "gavo-user.rc")  # not the account's ~/.gavorc
        env["PATH"] = "/usr/bin:/bin:" + env.get("PATH", "")
        return env

    # ------------------------------------------------------------------ PostgreSQL
    def _as_postgres(self, args: list[str]) -> None:
        cmd = ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise TapError(f"{Path(args[0]).name} failed: {proc.stderr.strip()[-800:]}")

    def _start_postgres(self) -> None:
        pg = self.pg_dir
        data, sock = pg / "data", pg / "sock"
        external = pg != self.root / "pg"
        marker = self.root / "pg-cluster"
        if external and data.exists() and not marker.exists():
            # this state folder never made that cluster (it was reset: a new TAP secret, so
            # the cluster's passwords are stale): start it afresh
            log.warning("tap: removing the stale PostgreSQL cluster %s", pg)
            shutil.rmtree(pg)
        if not data.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            pg.mkdir(parents=True, exist_ok=True)
            sock.mkdir(exist_ok=True)
            pwfile = pg / "pw"
            pwfile.write_text(self._pg_password + "\n")
            pwfile.chmod(0o600)
            if os.geteuid() == 0:
                for p in (pg, sock, pwfile) if external else (self.root, pg, sock, pwfile):
                    shutil.chown(p, "postgres")
                if not external:
                    self.root.chmod(0o755)
                probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(pg)])
                if probe.returncode != 0:
                    raise TapError(
                        f"the postgres account cannot reach {pg}: a parent folder is "
                        "private (make the parents of the TAP folder traversable)"
                    )
            self._as_postgres(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                ]
            )
            pwfile.unlink()
            marker.write_text(f"{pg}\n")
        opts = (
            f"-c listen_addresses=127.0.0.1 -c port={self.pg_port} "
            f"-c unix_socket_directories={sock} -c fsync=off"
        )
        self._as_postgres(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                opts,
                "-l",
                str(pg / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        self._pg_running = True

    def _stop_postgres(self) -> None:
        if self._pg_running:
            try:
                self._as_postgres(
                    [
                        str(self.bindir / "pg_ctl"),
                        "-D",
                        str(self.pg_dir / "data"),
                        "-m",
                        "fast",
                        "-w",
                        "stop",
                    ]
                )
            finally:
                self._pg_running = False

    # ------------------------------------------------------------------ DaCHS
    def _dachs_cli(self, *args: str, env: dict[str, str] | None = None) -> str:
        proc = subprocess.run(
            ["dachs", *args],
            env={**self._env(), **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
            cwd=self.root,
        )
        if proc.returncode != 0:
            raise TapError(
                f"dachs {' '.join(args)} failed: {(proc.stderr or proc.stdout).strip()[-1500:]}"
            )
        return proc.stdout

    def _write_settings(self) -> None:
        (self.root / "gavo-user.rc").write_text("")
        (self.root / "gavo.rc").write_text(
            dachs_settings(
                self.root,
                log_dir=self.log_dir,
                port=self.port,
                default_maxrec=self.default_maxrec,
                bind=self.bind,
                server_url=self.server_url,
                job_lifetime=self.job_lifetime,
                max_running=self.max_running,
            )
        )

    def setup(self) -> None:
        """First start: database, DaCHS's tables, the products RD, the visibility policy.

        Idempotent: on a database set up before, only DaCHS's files are made again where they
        are missing (a new pod on the chart's database), with the same role passwords, and a
        changed table definition is imported with the rows kept (:mod:`hub_config.tap.upgrade`).
        Two set-ups on one database (an old pod and a new one) run one after the other.
        """
        with self._admin_conn("postgres") as lock:
            lock.execute("SELECT pg_advisory_lock(%s)", (SETUP_LOCK,))
            try:
                self._setup()
            finally:
                lock.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))

    def _setup(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_settings()
        etc = self.root / "dachs" / "etc"
        new_files = not (etc / "feed").exists()
        if new_files:
            etc.mkdir(parents=True, exist_ok=True)
            for profile, role in DACHS_PROFILES.items():
                path = etc / profile
                path.write_text(
                    f"include dsn\nuser = {role}\npassword = {self.role_password(role)}\n"
                )
                path.chmod(0o600)
        # the address is the instance's (a port picked per start, or the cluster's service)
        (etc / "dsn").write_text(
            f"database = {self.pg_dbname}\nhost = {self.pg_host}\nport = {self.pg_port}\n"
        )
        rd = self.root / "dachs" / "inputs" / RD_NAME.split("/")[0]
        rd.mkdir(parents=True, exist_ok=True)
        (rd / "q.rd").write_text(RESOURCE_DESCRIPTOR)
        # the superuser's password goes by libpq's PGPASSWORD, not the command line, which
        # every local account can read in the process list
        secret_env = {"PGPASSWORD": self._pg_password}
        if not self._database_ready():
            with self._admin_conn("postgres") as conn:
                known = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (self.pg_dbname,)
                ).fetchone()
                if known is None:
                    conn.execute(
                        f"CREATE DATABASE \"{self.pg_dbname}\" ENCODING 'UTF8' TEMPLATE template0"
                    )
            self._dachs_cli("init", "-d", self.dsn(password=False), env=secret_env)
            self._dachs_cli("imp", "//obscore")
            self._dachs_cli("imp", RD_NAME)
            self._dachs_cli("pub", RD_NAME)
            record_definition(self, RESOURCE_DESCRIPTOR)
        elif new_files:
            # DaCHS's folders only; its roles get the passwords of the new profiles
            self._dachs_cli("init", "--nodb", "-d", self.dsn(password=False), env=secret_env)
            from psycopg import sql

            with self.connect() as conn:
                for role in DACHS_PROFILES.values():
                    conn.execute(
                        sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                            sql.Identifier(role), sql.Literal(self.role_password(role))
                        )
                    )
        if apply_table_definition(self, RESOURCE_DESCRIPTOR, RD_NAME):
            self._dachs_cli("pub", RD_NAME)
        with self.connect() as conn:
            conn.execute(VISIBILITY_POLICY)

    def _database_ready(self) -> bool:
        """Whether the database exists and holds the products table (a finished first setup)."""
        import psycopg

        try:
            with self.connect() as conn:
                # the saved copy alone: an upgrade stopped after DaCHS dropped the table
                row = conn.execute(
                    f"SELECT coalesce(to_regclass('roman.products'), to_regclass('{SAVED_TABLE}'))"
                ).fetchone()
        except psycopg.OperationalError as exc:
            if f'"{self.pg_dbname}" does not exist' in str(exc):
                return False
            raise TapError(f"PostgreSQL at {self.pg_host}:{self.pg_port}: {exc}") from None
        return bool(row and row[0])

    def _admin_conn(self, dbname: str):
        import psycopg

        return psycopg.connect(
            self.dsn().replace(f"dbname={self.pg_dbname}", f"dbname={dbname}"), autocommit=True
        )

    # ------------------------------------------------------------------ Component protocol
    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._start_postgres()
        try:
            self.setup()
            self._dachs = ManagedProcess(
                "tap",
                [SYSTEM_PYTHON, str(LAUNCHER)],
                env=self._env(),
                cwd=self.root,
                log_file=self.log_dir / "dachs.log",
                ready=http_ready(f"{self.url}/capabilities"),
            )
            self._dachs.start()
        except BaseException:
            self._stop_postgres()
            raise

    def wait_ready(self, timeout: float = 60.0) -> None:
        if self._dachs is None:
            raise ComponentError("tap: not started")
        self._dachs.wait_ready(timeout)

    def refresh(self) -> None:
        if self._dachs:
            self._dachs.refresh()

    def alive(self) -> bool:
        return bool(self._dachs and self._dachs.alive())

    def stop(self, timeout: float | None = None) -> None:
        try:
            if self._dachs:
                self._dachs.stop(timeout)
        finally:
            self._stop_postgres()

    def __enter__(self) -> TapService:
        self.start()
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m hub_config.tap.service FOLDER [--store URL]``: run the service in the foreground."""
    import argparse

    p = argparse.ArgumentParser(description="Run the platform's TAP/ObsCore service (DaCHS).")
    p.add_argument("folder", type=Path, help="folder for the database, DaCHS files and logs")
    p.add_argument("--port", type=int, default=0, help="TAP port (default: a free one)")
    p.add_argument("--store", help="publish this store's product index at start")
    args = p.parse_args(argv)
    with TapService(args.folder.resolve(), port=args.port) as tap:
        if args.store:
            print(f"published {publish_index(tap, args.store)} products", flush=True)
        print(f"{env_contract.TAP_URL}={tap.url}", flush=True)
        try:
            while tap.alive():
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
