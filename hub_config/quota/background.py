"""The service's background loops: usage sampling, home storage measurement, grace enforcement.

Each runs on the service's event loop as a periodic callback whose pass runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from tornado import ioloop

from hub_config.quota.storage.gatewayapi import GatewayStopper

if TYPE_CHECKING:
    from hub_config.quota.app import QuotaApp

log = logging.getLogger("quota")


def _in_thread(loop: asyncio.AbstractEventLoop, work, what: str):
    """An async pass of ``work`` in a worker thread that skips while the previous one still runs
    (a slow database or a big home folder must not pile passes up) and logs its failures."""
    busy = False

    async def run():
        nonlocal busy
        if busy:
            return
        busy = True
        try:
            await loop.run_in_executor(None, work)
        except Exception:
            log.exception("%s failed", what)
        finally:
            busy = False

    return run


def start_background(q: QuotaApp, sample: bool, enforce: bool) -> list[ioloop.PeriodicCallback]:
    """Sampler, home storage measurement and grace enforcer on the service's loop, each pass in
    a worker thread."""
    from hub_config.quota.services.enforcement import GraceEnforcer
    from hub_config.quota.services.sampler import Sampler, build_sources

    loop = asyncio.get_event_loop()
    callbacks = []
    if sample:
        sampler = Sampler(
            q.sessions, build_sources(q.hub, q.settings), q.settings.sample_interval_s
        )
        callbacks.append(
            ioloop.PeriodicCallback(
                _in_thread(loop, sampler.sample_once, "sampling"),
                q.settings.sample_interval_s * 1000,
            )
        )
    if sample and q.settings.homes_dir:
        from hub_config.quota.services.home_storage import HomeStorageSampler

        storage = HomeStorageSampler(q.sessions, q.settings.homes_dir)
        measure = _in_thread(loop, storage.sample_once, "storage measurement")
        callbacks.append(ioloop.PeriodicCallback(measure, q.settings.storage_interval_s * 1000))
        loop.call_later(1.0, lambda: asyncio.ensure_future(measure()))  # a first figure soon
    if enforce and q.hub is not None:
        gw = GatewayStopper(q.hub, q.settings.gateway_url) if q.settings.gateway_url else None
        enforcer = GraceEnforcer(q.sessions, q.settings, q.hub.stop_server, gw.stop if gw else None)

        async def _enforce():
            try:
                done = await loop.run_in_executor(None, enforcer.run_once)
                if done:
                    log.info("grace enforcement: %s", done)
            except Exception:
                log.exception("enforcement failed")

        callbacks.append(ioloop.PeriodicCallback(_enforce, q.settings.enforce_interval_s * 1000))
    for cb in callbacks:
        cb.start()
    return callbacks
