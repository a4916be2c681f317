"""Dask-Gateway server side of the tier policy: per-user options, per-cluster limits, totals.

The gateway authenticates every request through JupyterHub (``JupyterHubAuthenticator``), which
gives it the hub user's *groups*; the tier comes from those groups, never from anything the client
sends. From the tier:

* :func:`tier_cluster_options` builds the ``cluster_options`` a user may choose from (worker cores
  and memory within the tier's range) and the handler that turns them into the cluster's
  configuration (``cluster_max_workers/cores/memory``, ``idle_timeout``). Out-of-range values are
  refused by dask-gateway's own option validation with a clear message.
* :class:`TierLimitsMixin` (combine with any database-backed backend) enforces the *per-user
  totals* dask-gateway does not have since 0.7: number of clusters at creation, and total workers,
  cores and memory across all of a user's clusters on every scale, adapt and scheduler heartbeat
  (which is where adaptive scaling arrives). A request over the total is cut to what is left and
  the client gets a ``GatewayWarning`` saying so.

Wiring (``dask-gateway-server -f gateway_config.py``)::

    from hub_config.gateway import configure_gateway
    configure_gateway(c, backend="dask_gateway_server.backends.local.UnsafeLocalBackend")
"""

from __future__ import annotations

import contextvars
import json
import math
from typing import Any

from aiohttp import web
from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.options import Float, Options

from hub_config.policy import GIB, GatewayLimits, Policy, load_policy

TIER_ENV = "ROMAN_TIER"

_WARNINGS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("gw_warnings", default=None)


def user_tier(policy: Policy, user: Any) -> str:
    """The tier of a dask-gateway ``User`` (groups come from the hub via the authenticator)."""
    return policy.tier_of_groups(set(getattr(user, "groups", ()) or ()))


def tier_cluster_options(user: Any, policy_file: str | None = None) -> Options:
    """``Backend.cluster_options`` callable: what this user's tier may choose, with bounds."""
    policy = load_policy(policy_file)
    tier = user_tier(policy, user)
    lim = policy.gateway_limits(tier)

    def handler(options: Any, user: Any) -> dict[str, Any]:
        # Re-read the tier at handling time: the options object may be cached by a client.
        t = user_tier(policy, user)
        limits = policy.gateway_limits(t)
        return {
            "worker_cores": float(options.worker_cores),
            "worker_memory": int(float(options.worker_memory) * GIB),
            **cluster_limit_config(limits),
            "environment": {TIER_ENV: t},
        }

    return Options(
        Float(
            "worker_cores",
            default=lim.worker_cores.min,
            min=lim.worker_cores.min,
            max=lim.worker_cores.max,
            label=f"Worker cores ({tier} tier: {lim.worker_cores.min:g}-{lim.worker_cores.max:g})",
        ),
        Float(
            "worker_memory",
            default=lim.worker_memory_gib.min,
            min=lim.worker_memory_gib.min,
            max=lim.worker_memory_gib.max,
            label=f"Worker memory, GiB ({lim.worker_memory_gib.min:g}-{lim.worker_memory_gib.max:g})",
        ),
        handler=handler,
    )


def cluster_limit_config(limits: GatewayLimits) -> dict[str, Any]:
    """The per-cluster part of the tier limits, as dask-gateway ClusterConfig settings."""
    return {
        "cluster_max_workers": limits.max_workers,
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
    body = json.loads(resp.body)
    body["msg"] = " ".join(m for m in [body.get("msg"), *sink] if m)
    body["ok"] = False
    return web.json_response(body, status=resp.status)


class TierLimitsMixin:
    """Per-user totals for a dask-gateway DB backend (put it first in the bases)."""

    policy_file: str | None = None

    @property
    def policy(self) -> Policy:
        return load_policy(self.policy_file)

    async def setup(self, app: web.Application) -> None:
        await super().setup(app)
        app.middlewares.append(_warnings_middleware)

    # -------------------------------------------------------------- usage bookkeeping
    def _active_clusters(self, username: str) -> list[Any]:
        return [c for c in self.db.list_clusters(username=username) if c.is_active()]

    def _limits_of(self, cluster: Any) -> GatewayLimits:
        tier = (cluster.config.get("environment") or {}).get(TIER_ENV) or self.policy.default_tier
        if tier not in self.policy.tiers:
            tier = self.policy.default_tier
        return self.policy.gateway_limits(tier)

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
            n = other.count
            used_w += n
            used_c += n * float(other.config.get("worker_cores") or 1)
            used_m += n * float(other.config.get("worker_memory") or GIB)
        room = min(
            lim.max_total_workers - used_w,
            math.floor((lim.max_total_cores - used_c) / cores + 1e-9),
            math.floor((lim.max_total_memory_gib * GIB - used_m) / mem + 1e-9),
        )
        room = max(0, int(room))
        if requested <= room:
            return requested, None
        return room, (
            f"Your tier allows {lim.max_total_workers} workers, {lim.max_total_cores:g} cores and "
            f"{lim.max_total_memory_gib:g} GiB in total across all your clusters; your other "
            f"clusters use {used_w:g} workers, {used_c:g} cores, {used_m / GIB:g} GiB, so this "
            f"cluster is limited to {room} workers (asked for {requested})."
        )

    # -------------------------------------------------------------- enforcement points
    async def start_cluster(self, user: Any, cluster_options: Any) -> str:
        from hub_config.gateway import user_tier  # noqa: PLC0415 (self-reference for clarity)

        tier = user_tier(self.policy, user)
        lim = self.policy.gateway_limits(tier)
        active = self._active_clusters(user.name)
        if len(active) >= lim.max_clusters:
            raise PublicException(
                f"The {tier} tier may run {lim.max_clusters} cluster(s) at once and you have "
                f"{len(active)}; stop one first (gateway.list_clusters() shows them)."
            )
        await _quota_check(user, cluster_options, "Dask cluster")
        return await super().start_cluster(user, cluster_options)

    async def forward_message_to_scheduler(self, cluster: Any, msg: dict[str, Any]) -> Any:
        msg = dict(msg)
        if msg.get("op") == "scale":
            if int(msg["count"]) > 0:
                await _quota_check(cluster, cluster.options, "Dask scale-up")
            msg["count"], warning = self.allowed_workers(cluster.name, int(msg["count"]))
            if warning:
                _warn(warning)
        elif msg.get("op") == "adapt":
            maximum = msg.get("maximum")
            cap, warning = self.allowed_workers(cluster.name, int(maximum) if maximum is not None else 10**9)
            if warning:
                msg["maximum"] = cap
                msg["minimum"] = min(int(msg.get("minimum") or 0), cap)
                if maximum is not None:
                    _warn(warning)
        return await super().forward_message_to_scheduler(cluster, msg)

    async def on_cluster_heartbeat(self, cluster_name: str, msg: dict[str, Any]) -> Any:
        # Adaptive scaling arrives here: the scheduler asks for a worker count.
        count = int(msg.get("count", 0))
        allowed, warning = self.allowed_workers(cluster_name, count)
        if warning:
            self.log.info("cluster %s: heartbeat asked for %d workers, capped at %d by the per-user total",
                          cluster_name, count, allowed)
            msg = {**msg, "count": allowed}
        return await super().on_cluster_heartbeat(cluster_name, msg)


async def _quota_check(who: Any, options: Any, what: str) -> None:
    """Quota (issue 5): refuse when the allocation the cluster would charge is exhausted/expired.

    Active when the quota database is configured (``ROMAN_QUOTA_DB_URL``); ``who`` is the
    gateway ``User`` (new cluster) or the cluster (scale-up; its ``username``).
    """
    import asyncio
    import os

    if not os.environ.get("ROMAN_QUOTA_DB_URL"):
        return
    from hub_config.quota.enforcement import check_cluster
    from hub_config.quota.errors import QuotaError

    name = getattr(who, "username", None) or who.name
    groups = getattr(who, "groups", None)
    try:
        team = dict(options or {}).get("team") or None
    except (TypeError, ValueError):
        team = None
    try:
        await asyncio.to_thread(check_cluster, name, team, 0, groups, what=what)
    except QuotaError as exc:
        raise PublicException(str(exc)) from None


def tier_backend(base: type) -> type:
    """A backend class enforcing per-user totals on top of ``base`` (any DBBackendBase)."""
    return type(f"Tier{base.__name__}", (TierLimitsMixin, base), {"__module__": __name__})


def _import(path: str) -> type:
    import importlib

    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def configure_gateway(c: Any, backend: str, policy_file: str | None = None) -> type:
    """Wire tier options and per-user totals into a dask-gateway-server config object ``c``."""
    cls = tier_backend(_import(backend))
    cls.policy_file = policy_file
    c.DaskGateway.backend_class = cls
    c.Backend.cluster_options = lambda user: tier_cluster_options(user, policy_file)
    return cls
