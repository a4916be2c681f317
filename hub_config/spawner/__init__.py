"""Tier-aware spawning (see :mod:`.tier` for the checks every spawner makes).

* :mod:`.tier`: :class:`TierSpawnerMixin`, the options form and the server-side refusals;
* :mod:`.local`: :class:`TierLocalSpawnerMixin`, limits for local processes;
* :mod:`.kubernetes`: ``TierKubeSpawner`` (built on first use: importing kubespawner pulls in
  the Kubernetes client, which the local platform never needs) and its pod shaping.

The chart names the class ``hub_config.spawner.TierKubeSpawner``.
"""

from __future__ import annotations

from .local import CGROUP_ROOT, TierLocalSpawnerMixin
from .tier import ALLOWED_OPTIONS, ENVIRONMENT_VAR, SpawnCheck, SpawnRefused, TierSpawnerMixin

__all__ = [
    "ALLOWED_OPTIONS",
    "CGROUP_ROOT",
    "ENVIRONMENT_VAR",
    "SpawnCheck",
    "SpawnRefused",
    "TierKubeSpawner",
    "TierLocalSpawnerMixin",
    "TierSpawnerMixin",
    "apply_kube_profile",
]

_LAZY: dict[str, object] = {}


def __getattr__(name: str) -> object:
    if name not in ("TierKubeSpawner", "apply_kube_profile"):
        raise AttributeError(name)
    if name not in _LAZY:
        from . import kubernetes

        _LAZY["apply_kube_profile"] = kubernetes.apply_kube_profile
        _LAZY["TierKubeSpawner"] = kubernetes.make_tier_kube_spawner()
    return _LAZY[name]
