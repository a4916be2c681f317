"""A changed table definition reaches a database set up before, and keeps its rows.

DaCHS creates ``roman.products`` from the resource descriptor (:data:`~hub_config.tap.schema.
RESOURCE_DESCRIPTOR`) with ``dachs imp``, which drops the table and makes it again, empty.
The first set-up does that once; an upgrade that changes the descriptor (a new column, a new
index) would otherwise leave every existing database serving the old table. The survey rows
could be published again from the store's index, but the L5 rows exist only here, so they
must come through.

The digest of the descriptor the table was made from is kept in ``roman.schema_state``. When
it differs, the rows are copied to ``roman.products_saved`` (one transaction), DaCHS imports the
new definition, and the rows of the columns both definitions have go back in, in the
transaction that drops the copy and records the new digest. A failure anywhere leaves the copy
in place, and the next set-up finishes the job from it: the copy is made only when there is
none, so an interrupted upgrade never overwrites it with the empty new table.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Protocol

log = logging.getLogger("roman_platform.tap")

__all__ = ["apply_table_definition", "definition_digest"]

STATE_TABLE = "roman.schema_state"
SAVED_TABLE = "roman.products_saved"


class _Instance(Protocol):
    def connect(self): ...
    def _dachs_cli(self, *args: str, env: dict[str, str] | None = None) -> str: ...


def definition_digest(descriptor: str) -> str:
    """What identifies a table definition (the descriptor's text, whitespace included)."""
    return hashlib.sha256(descriptor.encode()).hexdigest()


def record_definition(tap: _Instance, descriptor: str) -> None:
    """Note that ``roman.products`` is now made from ``descriptor`` (after an import)."""
    with tap.connect() as conn:
        _record(conn, definition_digest(descriptor))


def _record(conn, digest: str) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (name text PRIMARY KEY, digest text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    conn.execute(
        f"INSERT INTO {STATE_TABLE} (name, digest) VALUES ('products', %s) ON CONFLICT (name)"
        " DO UPDATE SET digest = EXCLUDED.digest, applied_at = now()",
        (digest,),
    )


def apply_table_definition(tap: _Instance, descriptor: str, rd_name: str) -> bool:
    """Re-import ``rd_name`` if the table was made from another definition; rows are kept.

    Returns whether an import ran. A database from before the digest was kept counts as
    changed once (the re-import is harmless: every row comes through).
    """
    digest = definition_digest(descriptor)
    with tap.connect() as conn:
        current = None
        if conn.execute(f"SELECT to_regclass('{STATE_TABLE}')").fetchone()[0]:
            row = conn.execute(f"SELECT digest FROM {STATE_TABLE} WHERE name = 'products'")
            current = (row.fetchone() or (None,))[0]
        saved = conn.execute(f"SELECT to_regclass('{SAVED_TABLE}')").fetchone()[0]
        if current == digest and not saved:
            return False
        if saved:
            log.warning("tap: finishing an interrupted upgrade of roman.products from its copy")
        else:
            with conn.transaction():
                conn.execute(f"CREATE TABLE {SAVED_TABLE} AS TABLE roman.products")
            n = conn.execute(f"SELECT count(*) FROM {SAVED_TABLE}").fetchone()[0]
            log.warning("tap: the table definition changed; re-importing with %d rows kept", n)
    tap._dachs_cli("imp", rd_name)
    from psycopg import sql

    schema, saved_name = SAVED_TABLE.split(".")
    with tap.connect() as conn, conn.transaction():
        columns = [
            name
            for (name,) in conn.execute(
                "SELECT a.column_name FROM information_schema.columns a"
                " JOIN information_schema.columns b ON b.column_name = a.column_name"
                " AND b.table_schema = %(s)s AND b.table_name = %(saved)s"
                " WHERE a.table_schema = %(s)s AND a.table_name = 'products'"
                " ORDER BY a.ordinal_position",
                {"s": schema, "saved": saved_name},
            ).fetchall()
        ]

        cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        conn.execute(
            sql.SQL("INSERT INTO roman.products ({}) SELECT {} FROM {}").format(
                cols, cols, sql.SQL(SAVED_TABLE)
            )
        )
        conn.execute(f"DROP TABLE {SAVED_TABLE}")
        _record(conn, digest)
        conn.execute("ANALYZE roman.products")
    return True
