"""Tier grants from the quota database, for the authenticator (``TierGrantSource``)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from hub_config.quota.services.tiers import granted_tier
from hub_config.quota.settings import load_settings
from hub_config.quota.storage.db import session_factory


class DatabaseTierGrants:
    """``granted_tier(username)``: the live grant a platform admin (or an approval) made."""

    def __init__(self, db_url: str | None = None):
        self._db_url = db_url or load_settings().db_url
        self._sessions: sessionmaker[Session] | None = None

    def granted_tier(self, username: str) -> str | None:
        if self._sessions is None:
            self._sessions = session_factory(self._db_url)
        with self._sessions() as s:
            g = granted_tier(s, username)
            return g.tier if g else None

    def teams_of(self, username: str) -> list[tuple[str, str]]:
        """(team, role) of every membership the quota database records for ``username``.

        For the authenticator: with ``manage_groups`` it rewrites a user's groups at each login,
        so it must add these ``team-<name>`` / ``team-<name>-admins`` groups to the IdP's.
        """
        from sqlalchemy import select

        from hub_config.quota.storage.models import Membership, Team, User

        if self._sessions is None:
            self._sessions = session_factory(self._db_url)
        with self._sessions() as s:
            rows = s.execute(
                select(Team.name, Membership.role)
                .join(Membership.team)
                .join(Membership.user)
                .where(User.name == username)
            ).all()
            return [(t, r.value) for t, r in rows]
