"""Engine, sessions and schema migrations for the quota database.

The schema is only ever created by Alembic (``upgrade``), never by ``create_all``, so the
database a test builds is the database production migrates to.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(db_url: str) -> Engine:
    """An engine with SQLite made to honour foreign keys and to wait on locks (service + sampler)."""
    kwargs: dict = {"future": True}
    if db_url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    engine = create_engine(db_url, **kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

    return engine


def alembic_config(db_url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    return cfg


def upgrade(db_url: str, revision: str = "head") -> None:
    """Bring the database at ``db_url`` (empty or older) to ``revision``."""
    from alembic import command

    command.upgrade(alembic_config(db_url), revision)


def current_revision(db_url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration in {MIGRATIONS}")
    return head


def session_factory(db_url: str, migrate: bool = True) -> sessionmaker[Session]:
    """Sessions on ``db_url``, migrated first; the service, the hub and the gateway may race to
    migrate one database at start-up, and the loser only needs to find it at head."""
    if migrate:
        try:
            upgrade(db_url)
        except Exception:
            if current_revision(db_url) != head_revision():
                raise
    return sessionmaker(make_engine(db_url), expire_on_commit=False)
