"""The schema comes from Alembic, from an empty database, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from hub_config.quota.storage.db import current_revision, make_engine, upgrade
from hub_config.quota.storage.models import Allocation, Base, Team, utcnow


def test_upgrade_from_empty_matches_models(db_url):
    assert current_revision(db_url) is None
    upgrade(db_url)
    upgrade(db_url)  # idempotent
    assert current_revision(db_url) == "0002"
    engine = make_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
        assert tables == set(Base.metadata.tables)
        # the migration matches the models: autogenerate finds nothing to do
        from alembic.autogenerate import compare_metadata
        from alembic.runtime.migration import MigrationContext

        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_database_rejects_an_allocation_with_two_owners_or_negative_hours(sessions):
    import datetime as dt

    from hub_config.quota.storage.models import User

    now = utcnow()
    with sessions() as s:
        t, u = Team(name="lens"), User(name="alice")
        s.add_all([t, u])
        s.commit()
        s.add(
            Allocation(
                team=t,
                user=u,
                core_hours=1,
                period_start=now,
                period_end=now + dt.timedelta(days=1),
            )
        )
        with pytest.raises(IntegrityError):
            s.commit()
        s.rollback()
        s.add(
            Allocation(
                team=t, core_hours=-1, period_start=now, period_end=now + dt.timedelta(days=1)
            )
        )
        with pytest.raises(IntegrityError):
            s.commit()


def test_database_tier_grants_for_the_authenticator(db_url):
    from hub_config.policy import TierGrantSource
    from hub_config.quota import services as ops
    from hub_config.quota.services.grants import DatabaseTierGrants
    from hub_config.quota.storage.db import session_factory

    grants = DatabaseTierGrants(db_url)
    assert isinstance(grants, TierGrantSource)
    assert grants.granted_tier("alice") is None
    sessions = session_factory(db_url)
    admin = ops.Actor("root", platform_admin=True)
    with sessions() as s:
        ops.user(s, "alice", create=True)
        ops.grant_tier(s, admin, "alice", "research")
        ops.create_team(s, admin, "lens")
        ops.add_member(s, admin, "lens", "alice", "admin")
        s.commit()
    assert grants.granted_tier("alice") == "research"
    assert grants.teams_of("alice") == [("lens", "admin")]
    with sessions() as s:
        ops.revoke_tier(s, admin, "alice")
        s.commit()
    assert grants.granted_tier("alice") is None
    sessions.kw["bind"].dispose()
