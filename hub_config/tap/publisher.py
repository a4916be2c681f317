"""The store's product index, kept published in a TAP catalog: one look per interval, rows
replaced only when the index changed.

Both set-ups publish the same way: the one-machine supervisor's TAP component
(:class:`hub_config.local.tap_platform.TapComponent`) looks every few seconds, and the chart's
publisher pod (``python -m hub_config.tap.cluster publish``) every
``ROMAN_TAP_PUBLISH_INTERVAL``. So the publisher lives here, with the service, not in either
set-up's package.
"""

from __future__ import annotations

import logging
from typing import Any

from platform_lib import env_contract

from .catalog import TapCatalog, publish_index

log = logging.getLogger("roman_platform.tap")

__all__ = ["IndexPublisher"]


class IndexPublisher:
    """Publishes a store's product index into a TAP catalog whenever the index changes.

    One metadata request per look (the index file's size and version); the rows are replaced
    only when those differ from the last published ones. The local platform's component and the
    chart's publisher pod (:mod:`hub_config.tap.cluster`) both use it.
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
