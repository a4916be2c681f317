"""The rows and accounts of a TAP instance: who may query as whom, and what is published.

:class:`TapCatalog` is what every process that works with a running DaCHS instance needs, the one
that runs it (:class:`hub_config.tap.service.TapService`, a subclass) and the hub-facing proxy that
attaches to it (:meth:`TapService.attach`): the platform's secret, the per-user DaCHS accounts
derived from it, and the ``roman.products`` rows (the survey's index replaced in one transaction,
L5 products added by their owners and removed only by them or an admin, each removal recorded).
All of it goes through the table owner's PostgreSQL connection; what a *viewer* sees is decided
by the row policy (:mod:`hub_config.tap.schema`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .schema import TapError, dachs_hash

__all__ = ["TapCatalog", "publish_index"]

#: first key of the database advisory locks of account grants (the second: the user's hash)
GRANT_LOCK_CLASS = 0x524D4E  # "RMN"


class TapCatalog:
    """The database side of a DaCHS instance under ``root`` (PostgreSQL on ``pg_port``).

    Holds no process: :class:`~hub_config.tap.service.TapService` sets these attributes when it
    starts an instance or attaches to one. PostgreSQL is the platform's own server on loopback
    (its superuser's password derived from the secret) unless ``pg_host``/``pg_user``/
    ``pg_dbname``/``pg_password`` name another (the chart's in-cluster or external database).
    """

    root: Path
    pg_port: int
    _secret_file: Path
    _secret: str | None
    pg_host: str = "127.0.0.1"
    pg_user: str = "postgres"
    pg_dbname: str = "gavo"
    pg_password: str | None = None

    # ------------------------------------------------------------------ identity
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
        if self.pg_password is not None:
            return self.pg_password
        return hmac.new(self.secret.encode(), b"postgres", hashlib.sha256).hexdigest()

    def role_password(self, role: str) -> str:
        """The password of one of DaCHS's database roles (gavoadmin, gavo, untrusted).

        Derived from the secret, so a DaCHS whose files are new (a fresh pod on a database it
        set up before) logs in with the passwords the database already has.
        """
        return hmac.new(self.secret.encode(), f"dachs-role:{role}".encode(), "sha256").hexdigest()

    def dsn(self, *, password: bool = True) -> str:
        """libpq's key=value form for the superuser (``password=False``: without the password)."""
        dsn = f"host={self.pg_host} port={self.pg_port} dbname={self.pg_dbname} user={self.pg_user}"
        return f"{dsn} password={self._pg_password}" if password else dsn

    def connect(self):
        """A psycopg connection as the table owner's superuser (feeds and grants; bypasses RLS)."""
        import psycopg

        return psycopg.connect(self.dsn(), autocommit=True)

    # ------------------------------------------------------------------ content and accounts
    def grant(self, user: str, teams: Iterable[str] = ()) -> str:
        """Create or update the DaCHS account of a hub user with exactly these teams.

        Returns the password the platform uses for that user's TAP queries.
        """
        if not user or ":" in user or len(user) > 64:
            raise TapError(f"not a valid user name for TAP: {user!r}")
        password = self.password_for(user)
        with self.connect() as conn, conn.transaction():
            # Two proxy replicas may grant the same user at once: each would delete nothing
            # (the other's insert is not committed yet), then the second insert would collide.
            # A per-user lock in the database, not in one process, serialises them.
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (GRANT_LOCK_CLASS, user))
            conn.execute("DELETE FROM dc.groups WHERE username = %s", (user,))
            conn.execute("DELETE FROM dc.users WHERE username = %s", (user,))
            conn.execute(
                "INSERT INTO dc.users (username, password, remarks) VALUES (%s, %s, %s)",
                (user, dachs_hash(password), "hub user"),
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


def publish_index(tap: TapCatalog, store: Any = None) -> int:
    """Publish the store's product index (L1-L4, PSF) as ObsCore rows; returns the row count."""
    from platform_lib.data.index import load_index
    from platform_lib.data.obscore import obscore_row
    from platform_lib.data.store import get_store

    store = get_store(store)
    rows = [obscore_row(r, store.url(r["path"])) for r in load_index(store).to_pylist()]
    return tap.replace_products(rows, levels=("L1", "L2", "L3", "L4", "PSF"))
