"""Alembic environment: run from ``hub_config.quota.storage.db.upgrade`` with the URL in the config."""

from alembic import context

from hub_config.quota.storage.db import make_engine
from hub_config.quota.storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database URL: run through hub_config.quota.storage.db.upgrade(db_url)")
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline SQL generation is not supported; pass a database URL")
run_migrations_online()
