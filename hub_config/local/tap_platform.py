"""The TAP service in the local platform: the supervisor's component and the hub's proxy service.

``roman-platform up`` with ``data.tap`` on runs :class:`~hub_config.local.tap.TapService` under
``<state>/tap`` as a supervisor component (:func:`tap_component`), publishes the store's product
index into it once DaCHS answers and again whenever the index changes (the sample survey is
made in the background after start, and ``roman-platform data index`` rebuilds it), and has the hub start the hub-facing proxy
(:mod:`hub_config.local.tap_proxy`) as a managed service (:func:`configure_hub`, called by
:mod:`hub_config.modes.local` from the ``tap`` settings section the factory writes), so users
reach TAP with their hub token at ``<hub>/services/tap``.
"""

from __future__ import annotations

import logging
import secrets
import time
from pathlib import Path
from typing import Any

from hub_config.service_access import grant_service_access
from platform_lib import env_contract

from .processes import free_port
from .tap import TapService, dachs_available, platform_pg_dir
from .tap_catalog import TapCatalog, publish_index

log = logging.getLogger("roman_platform.local")

#: seconds between two looks at the store's index (one metadata request each)
INDEX_CHECK_INTERVAL = 10.0

__all__ = ["IndexPublisher", "TapComponent", "configure_hub", "tap_component"]


class IndexPublisher:
    """Publishes a store's product index into a TAP catalog whenever the index changes.

    One metadata request per look (the index file's size and version); the rows are replaced
    only when those differ from the last published ones. The local platform's component and the
    chart's publisher pod (:mod:`hub_config.local.tap_cluster`) both use it.
    """

    def __init__(self, catalog: TapCatalog, store_env: dict[str, str]) -> None:
        self.catalog = catalog
        self.store_env = store_env
        self._published: tuple[Any, Any] | None = None
        self._failure: str | None = None
        self._store_handle: Any = None

    def _store(self) -> Any:
        """The store whose index is published (made once: it is looked at every 10 s)."""
        if self._store_handle is None:
            self._store_handle = self._open_store()
        return self._store_handle

    def _open_store(self) -> Any:
        from platform_lib.data.store import get_store

        env = self.store_env
        url = env.get(env_contract.DATA_URL)
        if not url:
            return None
        if url.startswith("s3"):
            return get_store(
                url,
                endpoint=env.get(env_contract.DATA_S3_ENDPOINT),
                key=env.get("AWS_ACCESS_KEY_ID"),
                secret=env.get("AWS_SECRET_ACCESS_KEY"),
            )
        return get_store(url)

    def publish_if_changed(self) -> int | None:
        """Publish the store's index if it is not the one last published (size and version).

        Returns the rows published, None when nothing was (unchanged, no index yet, or a failure,
        which is logged once until it changes).
        """
        from platform_lib.data.index import INDEX_DIR, INDEX_PATH

        try:
            store = self._store()
            if store is None:
                return None
            store.fs.invalidate_cache(store.path(INDEX_DIR))
            if not store.exists(INDEX_PATH):
                return None
            info = store.fs.info(store.path(INDEX_PATH))
            version = (
                info.get("size"),
                info.get("ETag") or info.get("LastModified") or info.get("mtime"),
            )
            if version == self._published:
                return None
            n = publish_index(self.catalog, store)
            self._published = version
            self._failure = None
            log.info("tap: published %d products of %s", n, store.url(""))
            return n
        except Exception as exc:
            if str(exc) != self._failure:  # say it once, not every look
                log.warning("tap: index of the store not published: %s", exc)
                self._failure = str(exc)
            return None


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
        # users reach TAP through the hub (tap_proxy: their hub token decides what they see);
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
        "command": [sys.executable, "-m", "hub_config.local.tap_proxy"],
        "environment": {**tap["environment"], "PYTHONPATH": repo},
        "display": False,
    }
    services = list(c.JupyterHub.services or []) if "services" in c.JupyterHub else []
    c.JupyterHub.services = [s for s in services if s.get("name") != name] + [service]
    grant_service_access(c, name)
