"""The cluster options a user may choose from, and what they become: from the tier policy.

:func:`tier_cluster_options` builds the ``cluster_options`` of one user (worker cores and memory
within the tier's range, and the software environment among the policy's: ``platform_lib.compute``
sends the server's own) and the handler that turns them into the cluster's configuration
(``cluster_max_workers/cores/memory``, ``idle_timeout``, ``ROMAN_TIER``). Out-of-range values are
refused by dask-gateway's own option validation with a clear message.
"""

from __future__ import annotations

from typing import Any

from dask_gateway_server.options import Float, Options, Select

from hub_config.gateway.environment import ENVIRONMENT_ENV, TIER_ENV, default_environment
from hub_config.gateway.limits import cluster_limit_config, user_tier
from hub_config.policy import GIB, load_policy


def tier_cluster_options(user: Any) -> Options:
    """``Backend.cluster_options`` callable: what this user's tier may choose, with bounds."""
    policy = load_policy()  # $ROMAN_POLICY_FILE, else the bundled one (hub_config.policy)
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
                default=default_environment(policy).name,
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
