"""The quota service's shared state (:class:`QuotaApp`): settings, sessions, the hub client.

Its own module, below the HTTP layer (:mod:`.handlers`) and the background loops
(:mod:`.background`) that both read it, and below :mod:`.service` (the entry point that builds
one and starts them): in :mod:`.service` it tied the handlers and the entry point in an import
cycle.
"""

from __future__ import annotations

import os
import time

from hub_config.quota.services.teams import sync_idp_teams
from hub_config.quota.settings import QuotaSettings
from hub_config.quota.storage.db import session_factory

__all__ = ["QuotaApp"]


class QuotaApp:
    """Shared state of the service: settings, sessions, hub client and background loops."""

    def __init__(self, settings: QuotaSettings, hub=None, prefix: str = "/services/quota/"):
        self.settings = settings
        self.sessions = session_factory(settings.db_url)
        self.hub = hub
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.hub_prefix = os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/") + "/hub/"
        self._users: dict[str, tuple[float, dict | None]] = {}
        self.synced: set[str] = set()  # users whose IdP teams were synced by this process

    def hub_user(self, name: str, fresh: bool = False) -> dict | None:
        """The hub's record of a user (groups, admin), cached for a few seconds."""
        if self.hub is None:
            return None
        hit = self._users.get(name)
        if hit and not fresh and time.monotonic() - hit[0] < 5:
            return hit[1]
        info = self.hub.user(name)
        self._users[name] = (time.monotonic(), info)
        return info

    def forget(self, name: str) -> None:
        self._users.pop(name, None)

    def sync_idp_teams(self, name: str, groups: set[str]) -> None:
        """Once per user and process, at their first call: the IdP's teams join the record
        (:func:`hub_config.quota.services.teams.sync_idp_teams`, the one rule)."""
        self.synced.add(name)
        with self.sessions() as s:
            sync_idp_teams(s, name, groups)
            s.commit()
