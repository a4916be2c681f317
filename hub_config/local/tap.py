"""The platform's TAP/ObsCore service: GAVO DaCHS on a PostgreSQL server of its own.

DaCHS (Debian's ``python3-gavo``, the field's standard TAP server) serves ``ivoa.obscore`` and
``roman.products`` (every product of the store in ObsCore form, pgSphere footprints with a GiST
index) by ADQL over IVOA TAP, so pyvo, astroquery and TOPCAT work unchanged.

Who sees what is decided in PostgreSQL, not in a form: ``roman.products`` has row-level security
(public rows, the viewer's own and the viewer's teams' ``team`` rows), and ``ivoa.obscore`` is a
``security_invoker`` view so the policy applies through it too. DaCHS's query role is not the
table owner, so every ADQL query is subject to the policy; ``dachs_serve.py`` tells PostgreSQL
who the viewer is from credentials DaCHS has verified. The platform creates one DaCHS account per
hub user (:meth:`TapService.grant`, password derived from a secret only the platform holds) with
the user's teams as DaCHS groups, so only the platform can query as a user.

The PostgreSQL server is password-protected (scram) and listens on 127.0.0.1 only; DaCHS binds
127.0.0.1. ``python -m hub_config.local.tap FOLDER`` runs one in the foreground.
"""

from __future__ import annotations

import base64
import grp
import hashlib
import hmac
import logging
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from platform_lib import env_contract

from .processes import ComponentError, ManagedProcess, http_ready

log = logging.getLogger("roman_platform.local")

__all__ = ["TapService", "TapError", "dachs_available"]

SYSTEM_PYTHON = "/usr/bin/python3"
LAUNCHER = Path(__file__).with_name("dachs_serve.py")
RD_NAME = "roman/q"
#: rows a query returns unless it asks for more (MAXREC); the hard ceiling stops runaway queries
DEFAULT_MAXREC = 20000
HARD_MAXREC = 2_000_000

_RD = """<resource schema="roman">
  <meta name="title">Roman science platform products</meta>
  <meta name="description">Every product of the platform's store (L1-L4 survey products and
    L5 community products) with its footprint, epoch, band and where to read it.</meta>
  <meta name="creationDate">2026-12-02T00:00:00</meta>
  <meta name="subject">Roman Space Telescope</meta>
  <meta name="creator.name">Roman science platform</meta>
  <table id="products" onDisk="True" adql="True" primary="obs_publisher_did">
    <meta name="description">Platform products in ObsCore form with the platform's columns.
      Rows are visible by their visibility: public, the owner's, the team's.</meta>
    <mixin>//obscore#publishObscoreLike</mixin>
    <FEED source="//obscore#obscore-columns"/>
    <column name="roman_level" type="text" description="Platform level (L1-L5, PSF)"/>
    <column name="optical_element" type="text" description="WFI optical element"/>
    <column name="detector" type="text" description="WFI detector (WFI01-WFI18)"/>
    <column name="product_path" type="text" description="Path of the product in its store"/>
    <column name="visibility" type="text" description="public, team or private"/>
    <column name="owner_name" type="text" description="Hub user who published an L5 product"/>
    <column name="team" type="text" description="Team an L5 product is shared with"/>
    <column name="licence" type="text" description="Licence of an L5 product (SPDX id)"/>
    <index columns="s_region" method="GIST"/>
    <index columns="t_min"/>
    <index columns="roman_level"/>
  </table>
  <data id="import"><make table="products"/></data>
</resource>
"""

#: what the query role may see of roman.products (the table owner, which feeds it, sees all)
_POLICY = """
ALTER TABLE roman.products ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS visible ON roman.products;
CREATE POLICY visible ON roman.products FOR SELECT USING (
  visibility = 'public'
  OR (owner_name IS NOT NULL AND owner_name = NULLIF(current_setting('roman.viewer', true), ''))
  OR (visibility = 'team' AND team = ANY(string_to_array(
        NULLIF(current_setting('roman.teams', true), ''), ',')))
);
ALTER VIEW ivoa.obscore SET (security_invoker = true);
-- Under row-level security PostgreSQL applies a query's conditions only after the policy unless
-- their functions are LEAKPROOF, so a footprint condition could not use the GiST index (a 1e5
-- cone took 3 s instead of 5 ms). pgSphere's comparison functions reveal nothing beyond their
-- boolean result, so they are marked LEAKPROOF (the server is the platform's own).
DO $$
DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT DISTINCT o.oprcode::regprocedure FROM pg_operator o
           JOIN pg_type l ON l.oid = o.oprleft JOIN pg_type r ON r.oid = o.oprright
           WHERE (l.typname IN ('spoint', 'scircle', 'spoly', 'sbox', 'sline', 'spath', 'sellipse')
              OR r.typname IN ('spoint', 'scircle', 'spoly', 'sbox', 'sline', 'spath', 'sellipse'))
             AND o.oprresult = 'boolean'::regtype
  LOOP
    EXECUTE format('ALTER FUNCTION %s LEAKPROOF', f);
  END LOOP;
END $$;
CREATE TABLE IF NOT EXISTS roman.removals (
  obs_publisher_did text NOT NULL, product_path text, owner_name text,
  removed_by text NOT NULL, reason text, removed_at timestamptz NOT NULL DEFAULT now());
"""


class TapError(RuntimeError):
    """The TAP service could not be set up or refused an operation; the message says why."""


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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dachs_hash(password: str) -> str:
    """DaCHS's own password hash format (gavo.protocols.creds.hashPassword)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=4, r=8, p=1)
    return "scrypt:" + base64.b64encode(salt + digest).decode("ascii")


class TapService:
    """DaCHS + PostgreSQL under ``root`` (created on first start, reused after)."""

    name = "tap"

    def __init__(
        self,
        root: Path,
        *,
        port: int = 0,
        pg_port: int = 0,
        secret: str | None = None,
        log_dir: Path | None = None,
        default_maxrec: int = DEFAULT_MAXREC,
    ) -> None:
        self.root = Path(root)
        self.port = port or _free_port()
        self.pg_port = pg_port or _free_port()
        self.log_dir = Path(log_dir or self.root / "logs")
        self.default_maxrec = default_maxrec
        self._secret_file = self.root / "secret"
        self._secret = secret
        self._dachs: ManagedProcess | None = None
        self._pg_running = False
        missing = dachs_available()
        if missing:
            raise TapError(missing)
        self.bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))[-1].parent

    @classmethod
    def attach(cls, root: Path | str, *, port: int, pg_port: int, secret: str) -> TapService:
        """A handle on an instance another process runs (the hub-facing proxy): grants, rows."""
        self = cls.__new__(cls)
        self.root = Path(root)
        self.port, self.pg_port = port, pg_port
        self.log_dir = self.root / "logs"
        self.default_maxrec = DEFAULT_MAXREC
        self._secret_file = self.root / "secret"
        self._secret = secret
        self._dachs = None
        self._pg_running = False
        return self

    def proxy_env(self) -> dict[str, str]:
        """What the hub-facing proxy (:mod:`hub_config.local.tap_proxy`) needs to attach."""
        from platform_lib import env_contract

        return {
            env_contract.TAP_ROOT: str(self.root),
            env_contract.TAP_PORT: str(self.port),
            env_contract.TAP_PG_PORT: str(self.pg_port),
            env_contract.TAP_SECRET: self.secret,
        }

    # ------------------------------------------------------------------ paths and identity
    @property
    def url(self) -> str:
        """The TAP endpoint (what ``pyvo.dal.TAPService`` takes)."""
        return f"http://127.0.0.1:{self.port}/tap"

    @property
    def secret(self) -> str:
        if self._secret is None:
            if self._secret_file.exists():
                self._secret = self._secret_file.read_text().strip()
            else:
                self.root.mkdir(parents=True, exist_ok=True)
                self._secret = secrets.token_urlsafe(32)
                self._secret_file.write_text(self._secret)
                self._secret_file.chmod(0o600)
        return self._secret

    def password_for(self, user: str) -> str:
        """The DaCHS password of a hub user: only who holds the platform's secret can derive it."""
        return hmac.new(self.secret.encode(), user.encode(), hashlib.sha256).hexdigest()[:40]

    @property
    def _pg_password(self) -> str:
        return hmac.new(self.secret.encode(), b"postgres", hashlib.sha256).hexdigest()

    def dsn(self) -> str:
        return (
            f"host=127.0.0.1 port={self.pg_port} dbname=gavo user=postgres "
            f"password={self._pg_password}"
        )

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
        pg = self.root / "pg"
        data, sock = pg / "data", pg / "sock"
        if not data.exists():
            pg.mkdir(parents=True, exist_ok=True)
            sock.mkdir(exist_ok=True)
            pwfile = pg / "pw"
            pwfile.write_text(self._pg_password + "\n")
            if os.geteuid() == 0:
                for p in (self.root, pg, sock, pwfile):
                    shutil.chown(p, "postgres")
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
                        str(self.root / "pg/data"),
                        "-m",
                        "fast",
                        "-w",
                        "stop",
                    ]
                )
            finally:
                self._pg_running = False

    def connect(self):
        """A psycopg connection as the table owner's superuser (feeds and grants; bypasses RLS)."""
        import psycopg

        return psycopg.connect(self.dsn(), autocommit=True)

    # ------------------------------------------------------------------ DaCHS
    def _dachs_cli(self, *args: str) -> str:
        proc = subprocess.run(
            ["dachs", *args],
            env=self._env(),
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
            "[general]\n"
            f"rootDir: {self.root / 'dachs'}\n"
            f"group: {grp.getgrgid(os.getgid()).gr_name}\n"
            f"logDir: {self.log_dir}\n"
            "[web]\n"
            "bindAddress: 127.0.0.1\n"
            f"serverPort: {self.port}\n"
            f"serverURL: http://127.0.0.1:{self.port}\n"
            f"user: {pwd.getpwuid(os.getuid()).pw_name}\n"
            "[async]\n"
            f"defaultMAXREC: {self.default_maxrec}\n"
            f"hardMAXREC: {HARD_MAXREC}\n"
        )

    def setup(self) -> None:
        """First start: database, DaCHS's tables, the products RD, the visibility policy."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_settings()
        marker = self.root / "dachs" / "etc" / "feed"
        if not marker.exists():
            with self._admin_conn("postgres") as conn:
                conn.execute("CREATE DATABASE gavo ENCODING 'UTF8' TEMPLATE template0")
            self._dachs_cli("init", "-d", self.dsn())
            rd = self.root / "dachs" / "inputs" / RD_NAME.split("/")[0]
            rd.mkdir(parents=True, exist_ok=True)
            (rd / "q.rd").write_text(_RD)
            self._dachs_cli("imp", "//obscore")
            self._dachs_cli("imp", RD_NAME)
            self._dachs_cli("pub", RD_NAME)
        # the ports are picked per start: DaCHS's connection profile follows the server's
        dsn_file = self.root / "dachs" / "etc" / "dsn"
        dsn_file.write_text(f"database = gavo\nhost = 127.0.0.1\nport = {self.pg_port}\n")
        with self.connect() as conn:
            conn.execute(_POLICY)

    def _admin_conn(self, dbname: str):
        import psycopg

        return psycopg.connect(
            self.dsn().replace("dbname=gavo", f"dbname={dbname}"), autocommit=True
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

    # ------------------------------------------------------------------ content and accounts
    def grant(self, user: str, teams: Iterable[str] = ()) -> str:
        """Create or update the DaCHS account of a hub user with exactly these teams.

        Returns the password the platform uses for that user's TAP queries.
        """
        if not user or ":" in user or len(user) > 64:
            raise TapError(f"not a valid user name for TAP: {user!r}")
        password = self.password_for(user)
        with self.connect() as conn, conn.transaction():
            conn.execute("DELETE FROM dc.groups WHERE username = %s", (user,))
            conn.execute("DELETE FROM dc.users WHERE username = %s", (user,))
            conn.execute(
                "INSERT INTO dc.users (username, password, remarks) VALUES (%s, %s, %s)",
                (user, _dachs_hash(password), "hub user"),
            )
            for group in {user, *teams}:
                conn.execute(
                    "INSERT INTO dc.groups (username, groupname) VALUES (%s, %s)", (user, group)
                )
        return password

    def replace_products(self, rows: Iterable[dict[str, Any]], *, levels: Iterable[str]) -> int:
        """Make the survey rows of ``levels`` exactly ``rows`` (one transaction; L5 untouched)."""
        from platform_lib.data.obscore import OBSCORE_COLUMNS

        rows = list(rows)
        with self.connect() as conn, conn.transaction():
            conn.execute("DELETE FROM roman.products WHERE roman_level = ANY(%s)", (list(levels),))
            self._insert(conn, rows, OBSCORE_COLUMNS)
            conn.execute("ANALYZE roman.products")
        return len(rows)

    @staticmethod
    def _insert(conn, rows: list[dict[str, Any]], columns: list[str]) -> None:
        cols = ", ".join(columns)
        with conn.cursor().copy(f"COPY roman.products ({cols}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row([r.get(c) for c in columns])

    def add_product(self, row: dict[str, Any]) -> None:
        """Insert one product row; refuses to replace an existing one (nobody overwrites)."""
        import psycopg

        from platform_lib.data.obscore import OBSCORE_COLUMNS

        try:
            with self.connect() as conn, conn.transaction():
                self._insert(conn, [row], OBSCORE_COLUMNS)
        except psycopg.errors.UniqueViolation:
            raise TapError(f"{row['obs_publisher_did']} is already published") from None

    def remove_product(self, did: str, *, by: str, admin: bool = False, reason: str = "") -> None:
        """Remove an L5 product: only its owner (or a platform admin); the removal is recorded."""
        with self.connect() as conn, conn.transaction():
            found = conn.execute(
                "SELECT owner_name, product_path, roman_level FROM roman.products "
                "WHERE obs_publisher_did = %s FOR UPDATE",
                (did,),
            ).fetchone()
            if found is None:
                raise TapError(f"no product {did}")
            owner, path, level = found
            if level != "L5":
                raise TapError(f"{did} is a survey product: only L5 products can be removed")
            if owner != by and not admin:
                raise TapError(
                    f"{did} belongs to {owner}: only its owner or an admin may remove it"
                )
            conn.execute("DELETE FROM roman.products WHERE obs_publisher_did = %s", (did,))
            conn.execute(
                "INSERT INTO roman.removals (obs_publisher_did, product_path, owner_name,"
                " removed_by, reason) VALUES (%s, %s, %s, %s, %s)",
                (did, path, owner, by, reason),
            )


def publish_index(tap: TapService, store: Any = None) -> int:
    """Publish the store's product index (L1-L4, PSF) as ObsCore rows; returns the row count."""
    from platform_lib.data.index import load_index
    from platform_lib.data.obscore import obscore_row
    from platform_lib.data.store import get_store

    store = get_store(store)
    rows = [obscore_row(r, store.url(r["path"])) for r in load_index(store).to_pylist()]
    return tap.replace_products(rows, levels=("L1", "L2", "L3", "L4", "PSF"))


class TapComponent:
    """The supervisor's view of the service: start DaCHS, then publish the store's index."""

    name = "tap"

    def __init__(self, service: TapService, store_env: dict[str, str]) -> None:
        self.service = service
        self.store_env = store_env

    def start(self) -> None:
        self.service.start()

    def wait_ready(self, timeout: float) -> None:
        self.service.wait_ready(timeout)
        from platform_lib.data.store import get_store

        env = self.store_env
        url = env.get(env_contract.DATA_URL)
        if not url:
            return
        try:
            store = (
                get_store(
                    url,
                    endpoint=env.get(env_contract.DATA_S3_ENDPOINT),
                    key=env.get("AWS_ACCESS_KEY_ID"),
                    secret=env.get("AWS_SECRET_ACCESS_KEY"),
                )
                if url.startswith("s3")
                else get_store(url)
            )
            log.info("tap: published %d products of %s", publish_index(self.service, store), url)
        except Exception as exc:
            log.warning("tap: index of %s not published: %s", url, exc)

    def refresh(self) -> None:
        self.service.refresh()

    def alive(self) -> bool:
        return self.service.alive()

    def stop(self, timeout: float | None = None) -> None:
        self.service.stop(timeout)


def tap_component(p: Any) -> TapComponent | None:
    """Supervisor factory: the TAP service under ``<state>/tap`` when ``data.tap`` is on.

    Adds ``ROMAN_TAP_URL`` to every user server's environment. Off by default: it needs the
    Debian packages python3-gavo and postgresql-15-pgsphere (scripts/system-deps.sh).
    """
    if not getattr(p.config.data, "tap", False):
        return None
    state = p.state
    service = TapService(
        state.root / "tap",
        log_dir=state.logs_dir,
        secret=state.secret("tap_secret", lambda: secrets.token_urlsafe(32)),
    )
    settings = getattr(p, "settings", None)
    hub_url = getattr(getattr(settings, "hub", None), "public_url", None)
    if settings is not None and hub_url:
        # users reach TAP through the hub (tap_proxy: their hub token decides what they see);
        # the hub starts the proxy as a managed service (configure_hub, from settings.tap)
        public = hub_url.rstrip("/") + "/services/tap"
        settings.tap = {
            "proxy_url": f"http://127.0.0.1:{_free_port()}",
            "environment": {**service.proxy_env(), env_contract.TAP_PUBLIC_URL: public},
        }
        p.user_env[env_contract.TAP_URL] = public
    else:
        p.user_env[env_contract.TAP_URL] = service.url
    return TapComponent(service, dict(p.user_env))


def configure_hub(c: Any, tap: dict[str, Any], name: str = "tap") -> None:
    """Register the hub-facing TAP proxy as a hub-managed service on a JupyterHub config ``c``.

    Every user (their own tokens) and every server token may reach it; it reads the user's
    groups with the server token's ``read:users:groups!user`` (set by the spawner config).
    """
    import sys

    repo = str(Path(__file__).resolve().parents[2])
    service = {
        "name": name,
        "url": tap["proxy_url"],
        "command": [sys.executable, "-m", "hub_config.local.tap_proxy"],
        "environment": {**tap["environment"], "PYTHONPATH": repo},
        "display": False,
    }
    services = list(c.JupyterHub.services or []) if "services" in c.JupyterHub else []
    c.JupyterHub.services = [s for s in services if s.get("name") != name] + [service]
    access = f"access:services!service={name}"
    roles = [dict(r) for r in c.JupyterHub.load_roles] if "load_roles" in c.JupyterHub else []
    user_role = next((r for r in roles if r.get("name") == "user"), None)
    if user_role is None:
        roles.append({"name": "user", "scopes": ["self", access]})
    elif access not in user_role.get("scopes", []):
        user_role["scopes"] = [*user_role.get("scopes", []), access]
    c.JupyterHub.load_roles = roles
    scopes = list(c.Spawner.server_token_scopes) if "server_token_scopes" in c.Spawner else []
    if scopes and access not in scopes:
        c.Spawner.server_token_scopes = [*scopes, access]


def main(argv: list[str] | None = None) -> int:
    """``python -m hub_config.local.tap FOLDER [--store URL]``: run the service in the foreground."""
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
