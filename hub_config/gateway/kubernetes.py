"""The chart's Dask-Gateway: KubeBackend made readable by the per-user totals, and its config.

* :class:`IndexedKubeBackend`. :class:`hub_config.gateway.limits.TierLimitsMixin` enforces each
  tier's totals across all of a user's clusters (clusters at once, workers, cores, memory). It
  reads the clusters through ``self.db``, which the database-backed backends have and
  ``KubeBackend`` does not: KubeBackend keeps its clusters as DaskCluster objects in the
  Kubernetes API and mirrors them in ``self.clusters``. This class gives it an index with the same
  reading interface, and remembers each cluster's worker count from the scheduler heartbeats (the
  count KubeBackend writes into the DaskCluster's ``spec.replicas``).
* :func:`configure_kubernetes`: the gateway API's whole config. The chart renders its values as
  data (``gateway.json``, :class:`KubeGatewaySettings`) beside the config file, which is one call::

      from hub_config.gateway.kubernetes import configure_kubernetes
      configure_kubernetes(c, __file__)

* :func:`configure_controller`: the same for the controller (``controller.json``,
  :class:`ControllerSettings`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dask_gateway_server import models
from dask_gateway_server.backends.kubernetes.backend import KubeBackend
from pydantic import BaseModel, ConfigDict

from hub_config.gateway.configure import configure_gateway
from hub_config.gateway.limits import ClusterCheck
from platform_lib import env_contract

BACKEND = "hub_config.gateway.kubernetes.IndexedKubeBackend"
#: The data files the chart renders beside each config file.
SETTINGS_FILE = "gateway.json"
CONTROLLER_SETTINGS_FILE = "controller.json"
#: The scheduler needs the owner's credential for its dashboard (platform_lib/dashboard_auth.py).
SCHEDULER_CMD = ["dask", "scheduler", "--preload", "platform_lib.dashboard_auth"]


class _ClusterView:
    """One of KubeBackend's clusters as TierLimitsMixin reads it (name, user, config, count)."""

    __slots__ = ("_cluster", "count")

    def __init__(self, cluster: models.Cluster, count: int):
        self._cluster = cluster
        self.count = count

    @property
    def name(self) -> str:
        return self._cluster.name

    @property
    def username(self) -> str:
        return self._cluster.username

    @property
    def config(self) -> dict[str, Any]:
        return self._cluster.config or {}

    def is_active(self) -> bool:
        return self._cluster.status <= models.ClusterStatus.RUNNING


class _ClusterIndex:
    """The ``list_clusters``/``get_cluster`` reads of a DB backend's ``db``, over KubeBackend."""

    def __init__(self, backend: IndexedKubeBackend):
        self._backend = backend

    def _view(self, cluster: models.Cluster) -> _ClusterView:
        return _ClusterView(cluster, self._backend.worker_counts.get(cluster.name, 0))

    def list_clusters(self, username: str | None = None) -> list[_ClusterView]:
        clusters = getattr(self._backend, "clusters", {}) or {}
        return [
            self._view(c) for c in clusters.values() if username is None or c.username == username
        ]

    def get_cluster(self, name: str) -> _ClusterView | None:
        cluster = (getattr(self._backend, "clusters", {}) or {}).get(name)
        return None if cluster is None else self._view(cluster)


class IndexedKubeBackend(KubeBackend):
    """KubeBackend with a ``db`` index of its clusters and their worker counts."""

    @property
    def worker_counts(self) -> dict[str, int]:
        counts = self.__dict__.get("_worker_counts")
        if counts is None:
            counts = self.__dict__["_worker_counts"] = {}
        return counts

    @property
    def db(self) -> _ClusterIndex:
        return _ClusterIndex(self)

    async def on_cluster_heartbeat(self, cluster_name: str, msg: dict[str, Any]) -> Any:
        # Runs after the tier mixin has cut the count to what the user's totals allow; the same
        # cap KubeBackend applies (cluster_max_workers) is applied here so the index matches
        # what is written into the DaskCluster.
        count = int(msg.get("count", 0))
        cluster = getattr(self, "clusters", {}).get(cluster_name)
        if cluster is not None:
            cap = (cluster.config or {}).get("cluster_max_workers")
            self.worker_counts[cluster_name] = min(count, cap) if cap is not None else count
        return await super().on_cluster_heartbeat(cluster_name, msg)

    async def stop_cluster(self, cluster_name: str, failed: bool = False) -> Any:
        self.worker_counts.pop(cluster_name, None)
        return await super().stop_cluster(cluster_name, failed=failed)


# ------------------------------------------------------------------------------ the chart's config
class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SchedulerResources(_Settings):
    cores: float
    cores_limit: float
    memory: str
    memory_limit: str


class ReadOnlyVolume(_Settings):
    """A PersistentVolumeClaim mounted read-only in the scheduler and worker pods."""

    name: str
    claim_name: str
    mount_path: str


class KubeGatewaySettings(_Settings):
    """The chart's values for the gateway API (``gateway.json``, rendered by
    helm/roman-platform/templates/gateway/api-config.yaml)."""

    log_level: str
    gateway_instance: str
    api_url: str
    common_labels: dict[str, str]
    hub_api_url: str
    namespace: str
    image: str
    image_pull_policy: str
    scheduler: SchedulerResources
    worker_threads: int | None = None
    container_security: dict[str, Any]
    service_account: str
    fs_group: int
    pull_secrets: list[str]
    #: the data contract's variables (rp.dataEnv): ``{username}`` templates expanded per owner
    data_env: dict[str, str]
    volumes: list[ReadOnlyVolume]
    #: a Secret whose keys every scheduler and worker gets as variables (data.s3.existingSecret)
    s3_secret: str | None = None


class ControllerSettings(_Settings):
    """The chart's values for the controller (``controller.json``, rendered by
    helm/roman-platform/templates/gateway/controller-config.yaml)."""

    log_level: str
    api_url: str
    gateway_instance: str
    proxy_prefix: str
    proxy_web_middlewares: list[dict[str, str]]
    completed_cluster_max_age: int
    common_labels: dict[str, str]


def _beside(config_file: str | Path, name: str) -> Path:
    path = Path(config_file).with_name(name)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the chart renders it beside {Path(config_file).name}")
    return path


def load_gateway_settings(config_file: str | Path) -> KubeGatewaySettings:
    """The gateway API's settings beside ``config_file`` (a clear error names a bad field)."""
    return KubeGatewaySettings.model_validate_json(_beside(config_file, SETTINGS_FILE).read_text())


def quota_checks() -> list[ClusterCheck]:
    """The quota check (issue 5) when the gateway can read the quota database: with an external
    database the chart gives it ``ROMAN_QUOTA_DB_URL``; with SQLite the database lives in the hub
    pod and the gateway skips that check."""
    if not os.environ.get(env_contract.QUOTA_DB_URL):
        return []
    from hub_config.quota.services.enforcement import cluster_check

    return [cluster_check]


def configure_kubernetes(c: Any, config_file: str | Path) -> None:
    """dask-gateway-server on Kubernetes: the KubeBackend creates DaskCluster objects that the
    controller turns into scheduler and worker pods in the user namespace. Users authenticate
    with their hub token; what they may ask for comes from the tier policy
    (``ROMAN_POLICY_FILE``). ``config_file``: the config file being loaded (``__file__``)."""
    s = load_gateway_settings(config_file)
    c.DaskGateway.address = ":8000"
    c.DaskGateway.log_level = s.log_level
    c.KubeBackend.gateway_instance = s.gateway_instance
    c.KubeBackend.api_url = s.api_url
    c.KubeBackend.common_labels = dict(s.common_labels)
    k = c.KubeClusterConfig
    k.namespace = s.namespace
    k.image = s.image
    k.image_pull_policy = s.image_pull_policy
    k.scheduler_cmd = list(SCHEDULER_CMD)
    k.scheduler_cores = s.scheduler.cores
    k.scheduler_cores_limit = s.scheduler.cores_limit
    k.scheduler_memory = s.scheduler.memory
    k.scheduler_memory_limit = s.scheduler.memory_limit
    if s.worker_threads:
        k.worker_threads = s.worker_threads
    # Scheduler and worker pods: non-root, no capabilities, no API token; the user servers'
    # service account (its workload-identity annotations grant the same data access as the
    # notebook's), the release's pull secrets, and the read-only data volumes there are.
    pod_config: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "serviceAccountName": s.service_account,
        "securityContext": {
            "runAsNonRoot": True,
            "fsGroup": s.fs_group,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "imagePullSecrets": [{"name": n} for n in s.pull_secrets],
        "volumes": [
            {
                "name": v.name,
                "persistentVolumeClaim": {"claimName": v.claim_name, "readOnly": True},
            }
            for v in s.volumes
        ],
    }
    # The data contract's variables as container env: the tier options handler returns its own
    # "environment" (ROMAN_TIER), which replaces KubeClusterConfig.environment, while
    # extra_container_config lists are appended (dask-gateway's merge_json_objects). Per-user
    # templates ({username}) only in the environment, which the backend expands for the
    # cluster's owner: a raw template in this list would come last and win in the pod.
    container_config: dict[str, Any] = {
        "securityContext": dict(s.container_security),
        "env": [{"name": k_, "value": v} for k_, v in s.data_env.items() if "{" not in v],
        "volumeMounts": [
            {"name": v.name, "mountPath": v.mount_path, "readOnly": True} for v in s.volumes
        ],
    }
    if s.s3_secret:
        container_config["envFrom"] = [{"secretRef": {"name": s.s3_secret}}]
    k.scheduler_extra_pod_config = dict(pod_config)
    k.worker_extra_pod_config = dict(pod_config)
    k.scheduler_extra_container_config = dict(container_config)
    k.worker_extra_container_config = dict(container_config)
    k.environment = dict(s.data_env)

    c.DaskGateway.authenticator_class = "dask_gateway_server.auth.JupyterHubAuthenticator"
    c.JupyterHubAuthenticator.jupyterhub_api_url = s.hub_api_url

    # From the tier policy: what each tier may choose (worker cores and memory), its per-cluster
    # bounds, and its totals across all of a user's clusters, read through the index above.
    configure_gateway(c, BACKEND, cluster_checks=quota_checks())


def configure_controller(c: Any, config_file: str | Path) -> None:
    """The controller: turns DaskCluster objects into scheduler/worker pods, their TLS secret and
    service, and the traefik routes under the gateway's prefix."""
    path = _beside(config_file, CONTROLLER_SETTINGS_FILE)
    s = ControllerSettings.model_validate_json(path.read_text())
    c.KubeController.address = ":8000"
    c.KubeController.log_level = s.log_level
    c.KubeController.api_url = s.api_url
    c.KubeController.gateway_instance = s.gateway_instance
    c.KubeController.proxy_prefix = s.proxy_prefix
    c.KubeController.proxy_web_middlewares = [dict(m) for m in s.proxy_web_middlewares]
    c.KubeController.completed_cluster_max_age = s.completed_cluster_max_age
    c.KubeController.common_labels = dict(s.common_labels)
