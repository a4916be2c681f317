"""Dask-Gateway server side of the tier policy, in one package.

=============================  ==============================================================
module                         what lives there
=============================  ==============================================================
``gateway.options``            the cluster options a tier may choose, and their handler
``gateway.limits``             the tier of a gateway user, per-cluster limits, per-user
                               totals (:class:`TierLimitsMixin`), the injected cluster checks
``gateway.environment``        the data environment and software environment of a cluster
``gateway.configure``          :func:`configure_gateway`: the above on any backend class
``gateway.auth``               the hub-token authenticator (a bad token is 401, not 500)
``gateway.local``              the one-machine platform: loopback backend, ``configure_local``
``gateway.kubernetes``         the chart: KubeBackend with an index, ``configure_kubernetes``
``gateway.local_config``       the file dask-gateway-server loads on one machine (``-f``)
=============================  ==============================================================

Only ``local`` reads the one-machine set-up (hub_config.local), and only the mode modules know
the quota service: they hand its check to the backend (``cluster_checks``), as the hub's config
hands ``spawn_checks`` to the spawner (tests/test_layers.py holds both rules). The config files
dask-gateway-server loads are one call each: ``gateway/local_config.py`` calls
``configure_local(c, load_settings())``, the chart's ``dask_gateway_config.py``
``configure_kubernetes(c, __file__)`` with the chart's values as data beside it.

This package re-exports the names other code uses (``from hub_config.gateway import
configure_gateway, data_environment, TierLimitsMixin, TIER_ENV``); the mode modules are not
imported here (``kubernetes`` needs the Kubernetes backend, ``local`` the local settings).
"""

from __future__ import annotations

from hub_config.gateway.configure import configure_gateway, tier_backend
from hub_config.gateway.environment import (
    DATA_ENV_NAMES,
    DATA_ENV_PREFIXES,
    ENVIRONMENT_ENV,
    TIER_ENV,
    apply_software_environment,
    data_environment,
    user_environment,
    user_pod_identity,
)
from hub_config.gateway.limits import (
    ClusterCheck,
    TierLimitsMixin,
    cluster_limit_config,
    max_workers_per_cluster,
    user_tier,
)
from hub_config.gateway.options import tier_cluster_options

__all__ = [
    "DATA_ENV_NAMES",
    "DATA_ENV_PREFIXES",
    "ENVIRONMENT_ENV",
    "TIER_ENV",
    "ClusterCheck",
    "TierLimitsMixin",
    "apply_software_environment",
    "cluster_limit_config",
    "configure_gateway",
    "data_environment",
    "max_workers_per_cluster",
    "tier_backend",
    "tier_cluster_options",
    "user_environment",
    "user_pod_identity",
    "user_tier",
]
