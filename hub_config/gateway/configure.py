"""Wiring the tier policy into a dask-gateway-server config object, for any backend.

The mode modules call it: :func:`hub_config.gateway.local.configure_local` (the one-machine
platform) and :func:`hub_config.gateway.kubernetes.configure_kubernetes` (the chart); tests and
benchmarks call it directly with a stock backend.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, cast

from hub_config.gateway.limits import ClusterCheck, DataEnvHook, TierLimitsMixin
from hub_config.gateway.options import tier_cluster_options


def tier_backend(base: type) -> type[TierLimitsMixin]:
    """A backend class enforcing per-user totals on top of ``base`` (any DBBackendBase)."""
    cls = type(f"Tier{base.__name__}", (TierLimitsMixin, base), {"__module__": __name__})
    return cast("type[TierLimitsMixin]", cls)


def _import(path: str) -> type:
    module, _, name = path.rpartition(".")
    found = getattr(importlib.import_module(module), name)
    if not isinstance(found, type):
        raise TypeError(f"{path} is not a class (a dask-gateway backend class was expected)")
    return found


def configure_gateway(
    c: Any,
    backend: str,
    data_env_hook: DataEnvHook | None = None,
    cluster_checks: Sequence[ClusterCheck] = (),
) -> type[TierLimitsMixin]:
    """Wire tier options and per-user totals into a dask-gateway-server config object ``c``.

    ``data_env_hook``: see :attr:`TierLimitsMixin.data_env_hook`; ``cluster_checks``: see
    :attr:`TierLimitsMixin.cluster_checks` (the quota check, given by the mode's config)."""
    cls = tier_backend(_import(backend))
    # staticmethod: a plain function stored on the class would be bound as a method.
    cls.data_env_hook = staticmethod(data_env_hook) if data_env_hook is not None else None
    cls.cluster_checks = tuple(cluster_checks)
    c.DaskGateway.backend_class = cls
    c.Backend.cluster_options = tier_cluster_options
    return cls
