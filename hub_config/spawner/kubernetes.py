"""Kubernetes: KubeSpawner whose pod the chosen tier profile and environment shape."""

from __future__ import annotations

from typing import Any

from traitlets import Unicode

from hub_config.policy import ServerProfile
from platform_lib import env_contract

from .tier import TierSpawnerMixin


def make_tier_kube_spawner() -> type:
    # Built on first use: importing kubespawner pulls in the Kubernetes client, which the local
    # platform never needs.
    from kubespawner import KubeSpawner

    class TierKubeSpawner(TierSpawnerMixin, KubeSpawner):
        """KubeSpawner whose pod is shaped by the tier profile the user chose (and was allowed)."""

        scratch_volume_name = Unicode("scratch", config=True)
        scratch_mount_path = Unicode("/scratch", config=True)

        def apply_profile(self, profile: ServerProfile) -> None:
            super().apply_profile(profile)
            apply_kube_profile(self, profile)

    TierKubeSpawner.__module__ = "hub_config.spawner"  # its configured name
    return TierKubeSpawner


def apply_kube_profile(spawner: Any, profile: ServerProfile) -> None:
    """KubeSpawner overrides for a profile: image (the chosen environment's), GPUs, placement,
    storage; the environment's CRDS context."""
    policy = spawner.policy
    env_name = getattr(spawner, "environment_name", "") or None
    spawner.image = policy.image_for(profile, env_name)
    if policy.environments:
        # The environment pins its CRDS context (RRN pins one per release); Dask pods get the
        # same from the gateway.
        ctx = policy.environment(env_name).versions.crds_context
        spawner.environment = {**spawner.environment, "CRDS_CONTEXT": ctx}
    gpus = {"nvidia.com/gpu": str(profile.gpus)} if profile.gpus else {}
    spawner.extra_resource_guarantees = dict(gpus)
    spawner.extra_resource_limits = dict(gpus)
    spawner.node_selector = {**spawner.node_selector, **profile.node_selector}
    spawner.tolerations = [*spawner.tolerations, *(t.as_k8s() for t in profile.tolerations)]
    # Home: the tier's allocation (base_allocation.home_gb), not the profile of the first start
    # (KubeSpawner creates the claim once and never resizes it); profiles with a smaller
    # home_gib do not shrink it, and with no tier known the profile's size is the floor.
    home_gb = _allocation_home_gb(spawner, policy)
    spawner.storage_capacity = f"{home_gb:g}G" if home_gb else f"{profile.home_gib:g}Gi"
    name = spawner.scratch_volume_name
    volumes = [v for v in spawner.volumes if v.get("name") != name]
    mounts = [m for m in spawner.volume_mounts if m.get("name") != name]
    if profile.scratch_gib > 0:
        volumes.append({"name": name, "emptyDir": {"sizeLimit": f"{profile.scratch_gib:g}Gi"}})
        mounts.append({"name": name, "mountPath": spawner.scratch_mount_path})
    spawner.volumes, spawner.volume_mounts = volumes, mounts
    spawner.environment = {**spawner.environment, env_contract.SCRATCH: spawner.scratch_mount_path}


def _allocation_home_gb(spawner: Any, policy: Any) -> float:
    try:
        return float(policy.tiers[spawner.user_tier()].base_allocation.home_gb)
    except Exception:
        return 0.0
