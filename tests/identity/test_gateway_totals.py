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
    c = db.create_cluster(
        user,
        {},
        {
            "worker_cores": cores,
            "worker_memory": int(mem_gib * GIB),
            "environment": {TIER_ENV: tier},
        },
    )
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
    b.db, b.log = DataManager(), logging.getLogger("test")
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
    assert b.allowed_workers(c.name, 20)[0] == min(
        lim.max_total_workers, 20, int(lim.max_total_cores // 2)
    )


# ----------------------------------------------------------------------------- interleavings
# Deterministic versions of the races the end-to-end race test (test_gateway_race.py) samples:
# each request awaits in the middle (the quota check runs in a thread on the real platform), so
# without one decision at a time per user every request would see the same usage.


class _Forwarded:
    """Stand-in for the scheduler side: records what reached the scheduler."""

    async def forward_message_to_scheduler(self, cluster, msg):
        self.sent = getattr(self, "sent", {})
        self.sent[cluster.name] = msg

    async def start_cluster(self, user, options):
        await asyncio.sleep(0.01)  # creating the record yields once, as a real backend may
        return self.db.create_cluster(user.name, {}, {"environment": {TIER_ENV: "research"}}).name

    async def on_cluster_heartbeat(self, cluster_name, msg):
        self.db.update_cluster(self.db.get_cluster(cluster_name), count=msg["count"])

    async def _worker_to_stopped(self, worker):
        pass


class _RaceBackend(TierLimitsMixin, _Forwarded):
    pass


def _race_backend():
    async def slow_quota(username, groups, team, what):
        await asyncio.sleep(0.02)

    b = _RaceBackend()
    b.cluster_checks = [slow_quota]  # an injected check that awaits, as the quota check does
    b.db, b.log = DataManager(), logging.getLogger("test")
    return b


def test_concurrent_scale_requests_share_the_total():
    from types import SimpleNamespace

    async def scenario():
        b = _race_backend()
        lim = b.policy.gateway_limits("research")
        clusters = [_cluster(b.db, "ann", "research", 1, 1, 0) for _ in range(2)]
        for c in clusters:
            c.options = {}
        await asyncio.gather(
            *(b.forward_message_to_scheduler(c, {"op": "scale", "count": 10000}) for c in clusters)
        )
        granted = [b.sent[c.name]["count"] for c in clusters]
        assert sum(granted) == lim.max_total_workers, granted
        # Heartbeats carrying the scheduler's counts, in either order, keep the sum.
        for c in reversed(clusters):
            await b.on_cluster_heartbeat(c.name, {"count": b.sent[c.name]["count"]})
        assert sum(b.db.get_cluster(c.name).count for c in clusters) == lim.max_total_workers
        # An adapt on one while the other scales: still within the total.
        await asyncio.gather(
            b.forward_message_to_scheduler(clusters[0], {"op": "scale", "count": 0}),
            b.forward_message_to_scheduler(
                clusters[1], {"op": "adapt", "minimum": 0, "maximum": 10000}
            ),
        )
        assert b.sent[clusters[1].name]["maximum"] <= lim.max_total_workers
        # Concurrent new clusters: exactly max_clusters exist however many are asked for.
        user = SimpleNamespace(name="cat", groups=["tier-research"])
        results = await asyncio.gather(
            *(b.start_cluster(user, {}) for _ in range(5)), return_exceptions=True
        )
        made = [r for r in results if not isinstance(r, Exception)]
        assert len(made) == lim.max_clusters, results
        assert all("cluster(s) at once" in str(r) for r in results if isinstance(r, Exception))

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()


def test_no_worker_process_starts_while_others_still_stop():
    """Targets within the total are not enough: a new worker starts only when the owner's live
    worker processes (stopping ones included) leave room, and as soon as they do."""

    class _Queue(list):
        put = list.append

    async def scenario():
        b = _race_backend()
        b.queue, b.worker_start_failure_limit = _Queue(), 3
        lim = b.policy.gateway_limits("research")
        a = _cluster(b.db, "ann", "research", 1, 1, 0)
        other = _cluster(b.db, "ann", "research", 1, 1, 0)
        # A's workers were told to stop (A scaled to 0) but their processes still run.
        ws = [b.db.create_worker(a) for _ in range(lim.max_total_workers)]
        b.db.update_workers(
            [(w, {"status": JobStatus.RUNNING, "target": JobStatus.STOPPED}) for w in ws]
        )
        # The other cluster's target may be the whole total (A's target is 0) ...
        await b.on_cluster_heartbeat(other.name, {"count": lim.max_total_workers})
        assert b.db.get_cluster(other.name).count == lim.max_total_workers
        # ... but no process starts while A's still run.
        await b._check_cluster_scale(other)
        assert not other.workers
        # One of A's stops: exactly one may start, and the stop itself triggers the look.
        b.db.update_worker(ws[0], status=JobStatus.STOPPED)
        await b._worker_to_stopped(ws[0])
        assert other in b.queue
        await b._check_cluster_scale(other)
        assert len(other.workers) == 1
        b.db.update_workers([(w, {"status": JobStatus.STOPPED}) for w in ws[1:]])
        await b._check_cluster_scale(other)
        assert len(other.workers) == lim.max_total_workers

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()


def test_a_scale_down_frees_room_before_its_heartbeat():
    """A.scale(0) decided, its scheduler not yet reported: B's request already sees A at 0; a
    stale heartbeat from A (still its old count) does not take the room back."""

    async def scenario():
        b = _race_backend()
        lim = b.policy.gateway_limits("research")
        a, c = (_cluster(b.db, "ann", "research", 1, 1, 0) for _ in range(2))
        a.options = c.options = {}
        b.db.update_cluster(a, count=lim.max_total_workers)
        await b.forward_message_to_scheduler(a, {"op": "scale", "count": 0})
        await b.on_cluster_heartbeat(a.name, {"count": lim.max_total_workers})  # stale
        await b.forward_message_to_scheduler(c, {"op": "scale", "count": 10000})
        assert (
            b.sent[c.name]["count"] == lim.max_total_workers
        )  # (the per-cluster cap is the route's)
        await b.on_cluster_heartbeat(a.name, {"count": 0})
        assert a.name not in b._granted

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()
