"""The TAP service in the one-machine platform: the supervisor's component, the hub's proxy service.

The service itself (:mod:`hub_config.tap`) runs in both set-ups; what only one machine needs is
here. ``roman-platform up`` with ``data.tap`` on runs :class:`~hub_config.tap.service.TapService`
under ``<state>/tap`` as a supervisor component (:func:`tap_component`; run as root, its
PostgreSQL cluster lives under the ``postgres`` account's home, :func:`platform_pg_dir`),
publishes the store's product index into it once DaCHS answers and again whenever the index
changes (:class:`~hub_config.tap.publisher.IndexPublisher`: the sample survey is made in the
background after start, and ``roman-platform data index`` rebuilds it), and has the hub start the
hub-facing proxy (:mod:`hub_config.tap.proxy`) as a managed service (:func:`configure_hub`,
called by :mod:`hub_config.modes.local` from the ``tap`` settings section the factory writes), so
users reach TAP with their hub token at ``<hub>/services/tap``.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from hub_config.processes import free_port
from hub_config.service_access import grant_service_access
from hub_config.tap.publisher import IndexPublisher
from hub_config.tap.service import TapService, dachs_available
from platform_lib import env_contract

log = logging.getLogger("roman_platform.local")

#: seconds between two looks at the store's index (one metadata request each)
INDEX_CHECK_INTERVAL = 10.0

__all__ = ["TapComponent", "configure_hub", "platform_pg_dir", "tap_component"]


def platform_pg_dir(state_root: Path) -> Path | None:
    """Where the platform's TAP PostgreSQL cluster lives when the platform runs as root: a
    folder under the ``postgres`` account's home, one per state folder (its path's hash), so
    PostgreSQL never needs a way into the private state folder. ``None`` when not root (the
    cluster stays in ``<state>/tap/pg``, owned by the account that runs everything)."""
    if os.geteuid() != 0:
        return None
    import hashlib
    import pwd

    try:
        home = Path(pwd.getpwnam("postgres").pw_dir)
    except KeyError:  # no PostgreSQL server installed: TapService says what is missing
        return None
    digest = hashlib.sha256(str(Path(state_root).resolve()).encode()).hexdigest()[:12]
    return home / "roman-platform" / f"tap-{digest}"


class TapComponent:
    """The supervisor's view of the service: start DaCHS, then publish the store's index."""

    name = "tap"

    def __init__(self, service: TapService, store_env: dict[str, str]) -> None:
        self.service = service
        self.store_env = store_env
        self.publisher = IndexPublisher(service, store_env)
        self._next_check = 0.0

    def start(self) -> None:
        self.service.start()

    def wait_ready(self, timeout: float) -> None:
        self.service.wait_ready(timeout)
        self.publisher.publish_if_changed()

    def refresh(self) -> None:
        self.service.refresh()
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + INDEX_CHECK_INTERVAL
            self.publisher.publish_if_changed()

    def alive(self) -> bool:
        return self.service.alive()

    def stop(self, timeout: float | None = None) -> None:
        self.service.stop(timeout)


def tap_component(p: Any) -> TapComponent | None:
    """Supervisor factory: the TAP service under ``<state>/tap`` when ``data.tap`` is on.

    Adds ``ROMAN_TAP_URL`` to every user server's environment. Unset (the default), it runs
    where the Debian packages python3-gavo and postgresql-15-pgsphere are installed (``make up``
    installs them, scripts/system-deps.sh) and is left out elsewhere; ``true`` requires them.
    """
    wanted = getattr(p.config.data, "tap", None)
    if wanted is False:
        return None
    if wanted is None:
        missing = dachs_available()
        if missing:
            log.info("tap: not started (%s); data.tap: true makes this an error", missing)
            return None
    state = p.state
    service = TapService(
        state.root / "tap",
        log_dir=state.logs_dir,
        secret=state.secret("tap_secret", lambda: secrets.token_urlsafe(32)),
        pg_dir=platform_pg_dir(state.root),
    )
    settings = getattr(p, "settings", None)
    hub_url = getattr(getattr(settings, "hub", None), "public_url", None)
    if settings is not None and hub_url:
        # users reach TAP through the hub (hub_config.tap.proxy: their hub token decides what they see);
        # the hub starts the proxy as a managed service (configure_hub, from settings.tap)
        public = hub_url.rstrip("/") + "/services/tap"
        settings.tap = {
            "proxy_url": f"http://127.0.0.1:{free_port()}",
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
        "command": [sys.executable, "-m", "hub_config.tap.proxy"],
        "environment": {**tap["environment"], "PYTHONPATH": repo},
        "display": False,
    }
    services = list(c.JupyterHub.services or []) if "services" in c.JupyterHub else []
    c.JupyterHub.services = [s for s in services if s.get("name") != name] + [service]
    grant_service_access(c, name)
