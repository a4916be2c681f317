"""Per-user totals on the adaptive path: the scheduler's heartbeat count is capped by what the
user's other clusters leave (dask-gateway's own database; no processes)."""

from __future__ import annotations

import asyncio
import logging

from dask_gateway_server.backends.db_base import DataManager, JobStatus

from hub_config.gateway import TIER_ENV, TierLimitsMixin
from hub_config.policy import GIB, load_policy


class _Recorder:
    async def on_cluster_heartbeat(self, cluster_name, msg):
        self.seen = (cluster_name, msg)


class _Backend(TierLimitsMixin, _Recorder):
    pass


def _cluster(db, user, tier, cores, mem_gib, count):
    c = db.create_cluster(user, {}, {"worker_cores": cores, "worker_memory": int(mem_gib * GIB),
                                     "environment": {TIER_ENV: tier}})
    db.update_cluster(c, count=count)
    return c


def test_heartbeat_and_scale_capped_by_user_totals():
    # In a thread of its own: the browser fixture's event loop may be running in this one.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _scenario()).result()


async def _scenario():
    lim = load_policy().gateway_limits("research")  # bundled: 24 workers, 48 cores, 192 GiB
    b = _Backend()
    b.db, b.log, b.policy_file = DataManager(), logging.getLogger("test"), None
    a = _cluster(b.db, "ann", "research", 2, 4, 16)  # 16 workers, 32 cores, 64 GiB
    c = _cluster(b.db, "ann", "research", 2, 4, 0)
    _cluster(b.db, "bob", "research", 1, 1, 16)  # someone else's cluster does not count
    # Cores bind first: 48 - 32 = 16 cores left -> 8 workers of 2 cores.
    assert b.allowed_workers(c.name, 6) == (6, None)
    allowed, warning = b.allowed_workers(c.name, 20)
    assert allowed == 8 and "limited to 8 workers (asked for 20)" in warning
    # An adaptive scheduler asking for 20 in its heartbeat gets 8.
    await b.on_cluster_heartbeat(c.name, {"count": 20, "active_workers": []})
    assert b.seen == (c.name, {"count": 8, "active_workers": []})
    # Memory binds when workers are large: 192 - 64 = 128 GiB left -> 2 workers of 64 GiB.
    d = _cluster(b.db, "ann", "research", 1, 64, 0)
    assert b.allowed_workers(d.name, 5)[0] == 2
    # Stopped clusters free their share.
    b.db.update_cluster(a, status=JobStatus.STOPPED, target=JobStatus.STOPPED)
    assert b.allowed_workers(c.name, 20)[0] == min(lim.max_total_workers, 20, int(lim.max_total_cores // 2))
