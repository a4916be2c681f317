"""Per-cluster limits and per-user totals of the tier policy, on any database-backed backend.

The gateway authenticates every request through JupyterHub (``JupyterHubAuthenticator``), which
gives it the hub user's *groups*; the tier comes from those groups (:func:`user_tier`), never
from anything the client sends.

* The worker budget is for *workers*: a tier's ``max_workers`` / ``max_cores_per_cluster`` /
  ``max_memory_gib_per_cluster`` are what ``scale(n)`` can reach (:func:`cluster_limit_config`);
  each cluster's one scheduler (``scheduler_cores``, ``scheduler_memory``) comes on top and is
  bounded by ``max_clusters``. (dask-gateway on its own subtracts the scheduler from
  ``cluster_max_cores``, which gave Entry 3 workers where the policy says 4.)
* :class:`TierLimitsMixin` (combine with any database-backed backend) enforces the *per-user
  totals* dask-gateway does not have since 0.7: number of clusters at creation, and total workers,
  cores and memory across all of a user's clusters on every scale, adapt and scheduler heartbeat
  (which is where adaptive scaling arrives). A request over the total is cut to what is left and
  the client gets a ``GatewayWarning`` saying so. Every decision that reads the user's usage and
  records a new share runs under one lock per user with no ``await`` in between and counts the
  other clusters' just-granted targets, so concurrent requests from one user (any mix of
  clusters) never add up to more than the total; and on DB backends no worker *process* starts
  while the user's live workers (stopping ones included) leave no room for it.
* Other checks on cluster start and scale-up (the quota, issue 5) are *injected*:
  :attr:`TierLimitsMixin.cluster_checks`, set by the config (hub_config.gateway.local /
  hub_config.gateway.kubernetes), as the spawner's ``spawn_checks`` are by the hub's config.
  This module knows nothing of the quota database.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web
from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.backends.db_base import JobStatus

from hub_config.gateway.environment import (
    TIER_ENV,
    apply_software_environment,
    user_environment,
    user_pod_identity,
)
from hub_config.policy import GIB, GatewayLimits, Policy, load_policy

if TYPE_CHECKING:  # the backends the mixin is combined with (dask-gateway-server has no types)
    from dask_gateway_server.backends.db_base import DBBackendBase as _Backend
else:
    _Backend = object

#: ``check(username, groups, team, what)``: refuse a cluster start or scale-up by raising
#: ``PublicException`` (its message reaches the client); may return an awaitable. ``groups`` is
#: None for a scale-up (the cluster record has no groups), ``team`` the ``team`` option or None.
ClusterCheck = Callable[[str, "list[str] | None", "str | None", str], "Awaitable[None] | None"]
#: ``(username, environment) -> environment``: see :attr:`TierLimitsMixin.data_env_hook`.
DataEnvHook = Callable[[str, dict[str, str]], "dict[str, str]"]

_WARNINGS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "gw_warnings", default=None
)


def user_tier(policy: Policy, user: Any) -> str:
    """The tier of a dask-gateway ``User`` (groups come from the hub via the authenticator)."""
    return policy.tier_of_groups(set(getattr(user, "groups", ()) or ()))


def max_workers_per_cluster(
    limits: GatewayLimits, worker_cores: float, worker_memory: float
) -> int:
    """Workers one cluster may have: the tier's worker count, cores and memory, for workers only."""
    return max(
        0,
        min(
            limits.max_workers,
            math.floor(limits.max_cores_per_cluster / worker_cores + 1e-9),
            math.floor(limits.max_memory_gib_per_cluster * GIB / worker_memory + 1e-9),
        ),
    )


def cluster_limit_config(
    limits: GatewayLimits, worker_cores: float = 1.0, worker_memory: float = GIB
) -> dict[str, Any]:
    """The per-cluster part of the tier limits, as dask-gateway ClusterConfig settings.

    ``cluster_max_cores``/``cluster_max_memory`` are the workers' budget here; the backend adds
    the scheduler's share to them (:meth:`TierLimitsMixin.process_cluster_options`) so that
    dask-gateway's own arithmetic gives the same worker count as the policy."""
    return {
        "cluster_max_workers": max_workers_per_cluster(limits, worker_cores, worker_memory),
        "cluster_max_cores": float(limits.max_cores_per_cluster),
        "cluster_max_memory": int(limits.max_memory_gib_per_cluster * GIB),
        "idle_timeout": float(limits.idle_timeout_s),
    }


def _warn(message: str) -> None:
    sink = _WARNINGS.get()
    if sink is not None:
        sink.append(message)


@web.middleware
async def _warnings_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Add the per-user-total warnings to the scale/adapt responses the client reads."""
    if request.method != "POST" or not request.path.rstrip("/").endswith(("/scale", "/adapt")):
        return await handler(request)
    sink: list[str] = []
    token = _WARNINGS.set(sink)
    try:
        resp = await handler(request)
    finally:
        _WARNINGS.reset(token)
    if not sink or not isinstance(resp, web.Response) or resp.content_type != "application/json":
        return resp
    raw = resp.body
    if not isinstance(raw, (bytes, bytearray)):
        return resp
    body = json.loads(raw)
    body["msg"] = " ".join(m for m in [body.get("msg"), *sink] if m)
    body["ok"] = False
    return web.json_response(body, status=resp.status)


class TierLimitsMixin(_Backend):
    """Per-user totals for a dask-gateway backend (put it first in the bases).

    Reads clusters through ``self.db`` (``list_clusters``/``get_cluster``; DB backends have it,
    :class:`hub_config.gateway.kubernetes.IndexedKubeBackend` gives KubeBackend one)."""

    #: ``(username, environment) -> environment``: the per-user data environment, when the
    #: spawner derives it by more than a ``{username}`` template (e.g. per-user S3 keys looked up
    #: by the isolation code). Must be the same function the spawner uses for the server.
    data_env_hook: DataEnvHook | None = None
    #: Checks run on cluster start and scale-up, in order, under the user's lock (see
    #: :data:`ClusterCheck`); the config sets them (:func:`hub_config.gateway.configure_gateway`).
    cluster_checks: Sequence[ClusterCheck] = ()

    @property
    def policy(self) -> Policy:
        return load_policy()  # $ROMAN_POLICY_FILE, else the bundled one (hub_config.policy)

    async def setup(self, app: web.Application) -> None:
        await super().setup(app)
        app.middlewares.append(_warnings_middleware)

    # -------------------------------------------------------------- per-user state
    def _user_lock(self, username: str) -> asyncio.Lock:
        locks = self.__dict__.setdefault("_tier_user_locks", {})
        return locks.setdefault(username, asyncio.Lock())

    @property
    def _granted(self) -> dict[str, tuple[int, bool]]:
        """Worker counts granted to each cluster and not yet seen in a heartbeat, with whether
        the grant is exact (``scale``) or a floor (``adapt``'s minimum)."""
        return self.__dict__.setdefault("_tier_granted", {})

    # -------------------------------------------------------------- cluster configuration
    async def process_cluster_options(self, user: Any, request: Any) -> Any:
        options, config = await super().process_cluster_options(user, request)
        # The configured environment (the user servers' data environment) for this user; the
        # options handler's output (the tier) on top. The handler's dict replaced it upstream.
        base = self.cluster_config_class(parent=self).environment
        data_env = user_environment(dict(base), user.name)
        if self.data_env_hook is not None:
            data_env = dict(self.data_env_hook(user.name, data_env))
        config.environment = {**data_env, **dict(config.environment)}
        user_pod_identity(config, user.name)
        apply_software_environment(self.policy, config)
        # The scheduler comes on top of the workers' budget (see the module docstring).
        lim = self.policy.gateway_limits(
            config.environment.get(TIER_ENV) or self.policy.default_tier
        )
        config.cluster_max_cores = float(lim.max_cores_per_cluster) + float(config.scheduler_cores)
        config.cluster_max_memory = int(lim.max_memory_gib_per_cluster * GIB) + int(
            config.scheduler_memory
        )
        config.cluster_max_workers = max_workers_per_cluster(
            lim, config.worker_cores, config.worker_memory
        )
        return options, config

    # -------------------------------------------------------------- usage bookkeeping
    def _active_clusters(self, username: str) -> list[Any]:
        return [c for c in self.db.list_clusters(username=username) if c.is_active()]

    def _limits_of(self, cluster: Any) -> GatewayLimits:
        tier = (cluster.config.get("environment") or {}).get(TIER_ENV) or self.policy.default_tier
        if tier not in self.policy.tiers:
            tier = self.policy.default_tier
        return self.policy.gateway_limits(tier)

    def _usage(self, cluster: Any) -> int:
        """Workers ``cluster`` holds against its owner's totals. A count just granted and not yet
        reported by the scheduler is the newer figure: a ``scale`` grant replaces the heartbeat
        count (down as well as up), an ``adapt`` grant is a floor under it."""
        grant = self._granted.get(cluster.name)
        if grant is None:
            return int(cluster.count)
        count, exact = grant
        return count if exact else max(int(cluster.count), count)

    def allowed_workers(self, cluster_name: str, requested: int) -> tuple[int, str | None]:
        """The most workers ``cluster_name`` may have given the owner's other clusters."""
        cluster = self.db.get_cluster(cluster_name)
        if cluster is None:
            return requested, None
        lim = self._limits_of(cluster)
        cores = float(cluster.config.get("worker_cores") or 1)
        mem = float(cluster.config.get("worker_memory") or GIB)
        used_w = used_c = used_m = 0.0
        for other in self._active_clusters(cluster.username):
            if other.name == cluster.name:
                continue
            n = self._usage(other)
            used_w += n
            used_c += n * float(other.config.get("worker_cores") or 1)
            used_m += n * float(other.config.get("worker_memory") or GIB)
        room = max(0, _room(lim, cores, mem, used_w, used_c, used_m))
        if requested <= room:
            return requested, None
        return room, (
            f"Your tier allows {lim.max_total_workers} workers, {lim.max_total_cores:g} cores and "
            f"{lim.max_total_memory_gib:g} GiB in total across all your clusters; your other "
            f"clusters use {used_w:g} workers, {used_c:g} cores, {used_m / GIB:g} GiB, so this "
            f"cluster is limited to {room} workers (asked for {requested})."
        )

    def startable_workers(self, cluster: Any) -> int:
        """Worker processes ``cluster`` may start now: what the totals leave after every live
        worker process of the owner (starting, running, or told to stop and not yet gone)."""
        lim = self._limits_of(cluster)
        used_w = used_c = used_m = 0.0
        for c in self._active_clusters(cluster.username):
            live = sum(1 for w in c.workers.values() if w.status < JobStatus.STOPPED)
            used_w += live
            used_c += live * float(c.config.get("worker_cores") or 1)
            used_m += live * float(c.config.get("worker_memory") or GIB)
        return max(
            0,
            _room(
                lim,
                float(cluster.config.get("worker_cores") or 1),
                float(cluster.config.get("worker_memory") or GIB),
                used_w,
                used_c,
                used_m,
            ),
        )

    # -------------------------------------------------------------- enforcement points
    async def run_cluster_checks(self, who: Any, options: Any, what: str) -> None:
        """Every :attr:`cluster_checks` entry for ``who``: the gateway ``User`` (a new cluster)
        or the cluster (a scale-up; its ``username``)."""
        if not self.cluster_checks:
            return
        name = getattr(who, "username", None) or who.name
        groups = getattr(who, "groups", None)
        try:
            team = dict(options or {}).get("team") or None
        except (TypeError, ValueError):
            team = None
        for check in self.cluster_checks:
            result = check(name, None if groups is None else list(groups), team, what)
            if result is not None:
                await result

    async def start_cluster(self, user: Any, cluster_options: Any) -> str:
        tier = user_tier(self.policy, user)
        lim = self.policy.gateway_limits(tier)
        # One decision at a time per user: the count check, the quota check (which awaits a
        # thread) and the creation of the record, so concurrent creates cannot all pass.
        async with self._user_lock(user.name):
            active = self._active_clusters(user.name)
            if len(active) >= lim.max_clusters:
                raise PublicException(
                    f"The {tier} tier may run {lim.max_clusters} cluster(s) at once and you have "
                    f"{len(active)}; stop one first (gateway.list_clusters() shows them)."
                )
            await self.run_cluster_checks(user, cluster_options, "Dask cluster")
            return await super().start_cluster(user, cluster_options)

    async def forward_message_to_scheduler(self, cluster: Any, msg: dict[str, Any]) -> Any:
        msg = dict(msg)
        op = msg.get("op")
        if op in ("scale", "adapt"):
            async with self._user_lock(cluster.username):
                if op == "scale" and int(msg["count"]) > 0:
                    await self.run_cluster_checks(cluster, cluster.options, "Dask scale-up")
                # From here to the reservation nothing awaits: the decision is atomic.
                if op == "scale":
                    msg["count"], warning = self.allowed_workers(cluster.name, int(msg["count"]))
                    if warning:
                        _warn(warning)
                    self._granted[cluster.name] = (msg["count"], True)
                else:
                    maximum = msg.get("maximum")
                    cap, warning = self.allowed_workers(
                        cluster.name, int(maximum) if maximum is not None else 10**9
                    )
                    if warning:
                        msg["maximum"] = cap
                        msg["minimum"] = min(int(msg.get("minimum") or 0), cap)
                        if maximum is not None:
                            _warn(warning)
                    self._granted[cluster.name] = (min(int(msg.get("minimum") or 0), cap), False)
        return await super().forward_message_to_scheduler(cluster, msg)

    async def on_cluster_heartbeat(self, cluster_name: str, msg: dict[str, Any]) -> Any:
        # The heartbeat's count is the cluster's target (adaptive scaling arrives here too):
        # cap it by the totals and record it before anything awaits.
        count = int(msg.get("count", 0))
        allowed, warning = self.allowed_workers(cluster_name, count)
        if warning:
            self.log.info(
                "cluster %s: heartbeat asked for %d workers, capped at %d by the per-user total",
                cluster_name,
                count,
                allowed,
            )
            msg = {**msg, "count": allowed}
        grant = self._granted.get(cluster_name)
        if grant is not None and (count == grant[0] if grant[1] else count >= grant[0]):
            # The scheduler has taken the grant in (an older heartbeat may still carry another
            # count: the grant stays until then).
            self._granted.pop(cluster_name, None)
        return await super().on_cluster_heartbeat(cluster_name, msg)

    async def stop_cluster(self, cluster_name: str, failed: bool = False) -> Any:
        self._granted.pop(cluster_name, None)
        return await super().stop_cluster(cluster_name, failed=failed)

    # -------------------------------------------------------------- worker processes (DB backends)
    async def _check_cluster_scale(self, cluster: Any) -> Any:
        """Start no worker process the totals have no room for right now (targets are capped
        above; this holds while other workers are still stopping). The rest start when they
        have gone (:meth:`_worker_to_stopped` looks again)."""
        missing = cluster.count - len(cluster.active_workers())
        if missing <= 0 or cluster.worker_start_failure_count >= self.worker_start_failure_limit:
            return await super()._check_cluster_scale(cluster)
        for _ in range(min(missing, self.startable_workers(cluster))):
            worker = self.db.create_worker(cluster)
            self.log.info("Created worker %s for cluster %s", worker.name, cluster.name)
            self.queue.put(worker)
        return None

    async def _worker_to_stopped(self, worker: Any) -> Any:
        result = await super()._worker_to_stopped(worker)
        for c in self._active_clusters(worker.cluster.username):  # room freed: look again
            self.queue.put(c)
        return result


def _room(
    lim: GatewayLimits, cores: float, mem: float, used_w: float, used_c: float, used_m: float
) -> int:
    """Workers of ``cores``/``mem`` that fit in the tier's totals after ``used_*``."""
    return int(
        min(
            lim.max_total_workers - used_w,
            math.floor((lim.max_total_cores - used_c) / cores + 1e-9),
            math.floor((lim.max_total_memory_gib * GIB - used_m) / mem + 1e-9),
        )
    )
