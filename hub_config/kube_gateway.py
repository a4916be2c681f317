"""Dask-Gateway's Kubernetes backend, made readable by the tier policy's per-user totals.

``hub_config.gateway.TierLimitsMixin`` enforces each tier's totals across all of a user's clusters
(clusters at once, workers, cores, memory). It reads the clusters through ``self.db``, which the
database-backed backends have and ``KubeBackend`` does not: KubeBackend keeps its clusters as
DaskCluster objects in the Kubernetes API and mirrors them in ``self.clusters``. This class gives
it an index with the same reading interface, and remembers each cluster's worker count from the
scheduler heartbeats (the count KubeBackend writes into the DaskCluster's ``spec.replicas``).

Wiring, in the chart's gateway config::

    configure_gateway(c, backend="hub_config.kube_gateway.IndexedKubeBackend")
"""

from __future__ import annotations

from typing import Any

from dask_gateway_server import models
from dask_gateway_server.backends.kubernetes.backend import KubeBackend


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
