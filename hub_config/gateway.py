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
  the client gets a ``GatewayWarning`` saying so. Every decision that reads the user's usage and
  records a new share runs under one lock per user with no ``await`` in between and counts the
  other clusters' just-granted targets, so concurrent requests from one user (any mix of
  clusters) never add up to more than the total; and on DB backends no worker *process* starts
  while the user's live workers (stopping ones included) leave no room for it.
* The software environment (docs/environments.md): an ``environment`` option among the policy's
  (``platform_lib.compute`` sends the server's own); :func:`apply_software_environment` gives
  the scheduler and workers its image on Kubernetes, its local Python environment otherwise,
  and ``ROMAN_ENVIRONMENT`` everywhere.
* The worker budget is for *workers*: a tier's ``max_workers`` / ``max_cores_per_cluster`` /
  ``max_memory_gib_per_cluster`` are what ``scale(n)`` can reach; each cluster's one scheduler
  (``scheduler_cores``, ``scheduler_memory``) comes on top and is bounded by ``max_clusters``.
  (dask-gateway on its own subtracts the scheduler from ``cluster_max_cores``, which gave Entry
  3 workers where the policy says 4.)
* Schedulers and workers get the user's *data environment*: the configured
  ``ClusterConfig.environment`` (the same variables the spawner gives the user's server, see
  :func:`data_environment`) with per-user templates (``{username}``) expanded for that user, as
  KubeSpawner expands them for the server, plus the tier. Nothing from the client is trusted
  for it, and nothing of another user (their hub token included) is in it.

Wiring (``dask-gateway-server -f gateway_config.py``)::

    from hub_config.gateway import configure_gateway
    configure_gateway(c, backend="dask_gateway_server.backends.local.UnsafeLocalBackend")
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import math
from typing import Any

from aiohttp import web
from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.backends.db_base import JobStatus
from dask_gateway_server.options import Float, Options, Select

from hub_config.policy import GIB, GatewayLimits, Policy, load_policy

TIER_ENV = "ROMAN_TIER"
#: The software environment (release) of a cluster: the same variable the user's server has.
ENVIRONMENT_ENV = "ROMAN_ENVIRONMENT"

_WARNINGS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "gw_warnings", default=None
)


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
        cores, memory = float(options.worker_cores), int(float(options.worker_memory) * GIB)
        env = {TIER_ENV: t}
        if policy.environments:  # validated by the Select field: one the policy offers
            env[ENVIRONMENT_ENV] = options.environment
        return {
            "worker_cores": cores,
            "worker_memory": memory,
            **cluster_limit_config(limits, cores, memory),
            "environment": env,  # the backend adds the user's data environment
        }

    fields = []
    if policy.environments:
        # platform_lib.compute passes the server's own ROMAN_ENVIRONMENT, so workers run what
        # the notebook runs; the backend applies it (the image on Kubernetes).
        fields.append(
            Select(
                "environment",
                options=policy.environment_names,
                default=policy.default_environment.name,
                label="Software environment (release): the same as your server's",
            )
        )
    return Options(
        *fields,
        Float(
            "worker_cores",
            default=lim.worker_cores.min,
            min=lim.worker_cores.min,
            max=lim.worker_cores.max,
            label=(
                f"Worker cores ({tier} tier: {lim.worker_cores.min:g}-{lim.worker_cores.max:g}; up to "
                f"{lim.max_workers} workers per cluster, {lim.max_total_workers} in all, "
                "scheduler not counted)"
            ),
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


#: The variables of a user server's environment that its Dask processes need to read and write
#: the data the way the notebook does (the shared env contract): the survey store, the user's and
#: teams' spaces, the S3 endpoint and credentials, the reference files.
DATA_ENV_NAMES = (
    "ROMAN_DATA_URL",
    "ROMAN_DATA_S3_ENDPOINT",
    "ROMAN_USER_STORE_URL",
    "ROMAN_TEAM_STORE_URL",
    "CRDS_PATH",
    "CRDS_SERVER_URL",
    "STPSF_PATH",
)
DATA_ENV_PREFIXES = ("AWS_",)


def data_environment(env: dict[str, str]) -> dict[str, str]:
    """The data part of a user server's environment (what the gateway passes on to workers)."""
    return {
        k: str(v) for k, v in env.items() if k in DATA_ENV_NAMES or k.startswith(DATA_ENV_PREFIXES)
    }


def _slug(username: str) -> str:
    try:  # the hub image has KubeSpawner: expand {username} exactly as it does for the server
        from kubespawner.slugs import safe_slug
    except ImportError:  # pragma: no cover - local platforms without kubespawner
        import re

        return re.sub(r"[^a-z0-9-]", "-", username.lower())[:48]
    return safe_slug(username, max_length=48)


def user_environment(env: dict[str, str], username: str) -> dict[str, str]:
    """``env`` for ``username``: ``{username}`` (KubeSpawner's safe slug) and
    ``{unescaped_username}`` expanded in every value, nothing else touched."""
    subs = {"{username}": _slug(username), "{unescaped_username}": username}
    out = {}
    for key, value in env.items():
        value = str(value)
        for tpl, real in subs.items():
            value = value.replace(tpl, real)
        out[key] = value
    return out


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


def user_pod_identity(config: Any, username: str) -> None:
    """Kubernetes: scheduler and worker pods run as the user's own service account (workload
    identity), when the chart names it with a template (``serviceAccountName: "{username}-..."``
    in ``KubeClusterConfig.*_extra_pod_config``), expanded as KubeSpawner expands it for the
    server. Other backends have no pod config and are left alone."""
    for trait in ("scheduler_extra_pod_config", "worker_extra_pod_config"):
        pod = getattr(config, trait, None)
        if isinstance(pod, dict) and isinstance(pod.get("serviceAccountName"), str):
            name = user_environment({"sa": pod["serviceAccountName"]}, username)["sa"]
            setattr(config, trait, {**pod, "serviceAccountName": name})


def apply_software_environment(policy: Policy, config: Any) -> None:
    """The cluster's software environment (``ROMAN_ENVIRONMENT``, set by the options handler).

    Kubernetes (a config with an ``image``): scheduler and workers run the environment's image,
    with its CRDS context, as the user's server does. Local backends run the environment's local
    Python environment (the gateway's own, or the environment's overlay: its ``dask`` program);
    an environment no local Python environment has is refused rather than started with other
    versions under its name (hub_config.environments.local_runtime)."""
    if not policy.environments:
        return
    name = dict(config.environment).get(ENVIRONMENT_ENV) or policy.default_environment.name
    try:
        env = policy.environment(name)
    except KeyError as exc:
        raise PublicException(str(exc.args[0])) from None
    if config.has_trait("image"):
        config.image = env.image
        config.environment = {**dict(config.environment), "CRDS_CONTEXT": env.versions.crds_context}
        return
    from hub_config.environments import EnvironmentUnavailable, local_runtime

    try:
        runtime = local_runtime(env)
        config.scheduler_cmd = runtime.command(list(config.scheduler_cmd))
        config.worker_cmd = runtime.command(list(config.worker_cmd))
    except (EnvironmentUnavailable, FileNotFoundError) as exc:
        raise PublicException(f"Cannot start a cluster in environment {name}: {exc}") from None
    extra = {ENVIRONMENT_ENV: env.name}
    if runtime.prefix is not None:  # its overlay's programs first, as in the user's server
        extra["PATH"] = runtime.path(dict(config.environment).get("PATH"))
    config.environment = {**dict(config.environment), **extra}


class TierLimitsMixin:
    """Per-user totals for a dask-gateway backend (put it first in the bases).

    Reads clusters through ``self.db`` (``list_clusters``/``get_cluster``; DB backends have it,
    :mod:`hub_config.kube_gateway` gives KubeBackend one)."""

    policy_file: str | None = None
    #: ``(username, environment) -> environment``: the per-user data environment, when the
    #: spawner derives it by more than a ``{username}`` template (e.g. per-user S3 keys looked up
    #: by the isolation code). Must be the same function the spawner uses for the server.
    data_env_hook: Any = None

    @property
    def policy(self) -> Policy:
        return load_policy(self.policy_file)

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
            await _quota_check(user, cluster_options, "Dask cluster")
            return await super().start_cluster(user, cluster_options)

    async def forward_message_to_scheduler(self, cluster: Any, msg: dict[str, Any]) -> Any:
        msg = dict(msg)
        op = msg.get("op")
        if op in ("scale", "adapt"):
            async with self._user_lock(cluster.username):
                if op == "scale" and int(msg["count"]) > 0:
                    await _quota_check(cluster, cluster.options, "Dask scale-up")
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


async def _quota_check(who: Any, options: Any, what: str) -> None:
    """Quota (issue 5): refuse when the allocation the cluster would charge is exhausted/expired.

    Active when the quota database is configured (``ROMAN_QUOTA_DB_URL``); ``who`` is the
    gateway ``User`` (new cluster) or the cluster (scale-up; its ``username``).
    """
    import os

    if not os.environ.get("ROMAN_QUOTA_DB_URL"):
        return
    from hub_config.quota.errors import QuotaError
    from hub_config.quota.services.enforcement import check_cluster

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


def configure_gateway(
    c: Any, backend: str, policy_file: str | None = None, data_env_hook: Any = None
) -> type:
    """Wire tier options and per-user totals into a dask-gateway-server config object ``c``.

    ``data_env_hook``: see :attr:`TierLimitsMixin.data_env_hook`."""
    cls = tier_backend(_import(backend))
    cls.policy_file = policy_file
    cls.data_env_hook = staticmethod(data_env_hook) if data_env_hook is not None else None
    c.DaskGateway.backend_class = cls
    c.Backend.cluster_options = lambda user: tier_cluster_options(user, policy_file)
    return cls
