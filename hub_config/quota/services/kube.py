"""Dask-Gateway usage on Kubernetes, read from the Kubernetes API.

On Kubernetes the gateway keeps no database (``GatewayDatabaseSource`` reads the local
platform's): its backend stores each cluster as a ``DaskCluster`` object, whose spec holds the
user, the cluster options (the team to charge among them) and the resolved configuration, and
runs each scheduler and worker as a pod labelled with the cluster's name and its component.
So the sampler lists both, in the user namespace and for one gateway instance:

- a pod is charged from ``status.startTime`` (the kubelet holds its resources from then, image
  pull included) with the CPU it *requested* and the GPUs in its limits, because that is what
  the scheduler reserved for it, whatever the worker uses;
- a pod that has ended (phase Succeeded or Failed) is charged up to the last container's
  ``finishedAt``; one deleted between two samples is charged as ``ledger.integrate`` charges
  anything that vanishes (half a sampling step at most is lost or added);
- a pod not yet started (Pending, no start time) holds nothing and is not charged;
- the team is the one the user chose in the cluster options; ``sampler._validated_teams``
  charges it only if the user is a member.

Keys are ``gateway:<namespace>.<cluster>:<pod>``: ``<namespace>.<cluster>`` is the name the
gateway's API knows the cluster by, which the grace-period stop uses.

The client is read-only and minimal (two list calls with a bearer token): in a pod it takes the
service account's token, CA and namespace as Kubernetes mounts them, re-reading the token at
each call because bound tokens rotate.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from hub_config.quota.services import ledger

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
CRD_GROUP, CRD_VERSION = "gateway.dask.org", "v1alpha1"
INSTANCE_LABEL = "gateway.dask.org/instance"
CLUSTER_LABEL = "gateway.dask.org/cluster"
COMPONENT_LABEL = "app.kubernetes.io/component"
COMPONENTS = {"dask-scheduler": "scheduler", "dask-worker": "worker"}
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")


class KubeAPIError(RuntimeError):
    pass


class KubeAPI:
    """GET-only access to a Kubernetes API server."""

    def __init__(
        self,
        url: str,
        token_file: str | os.PathLike[str] | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        timeout: float = 20.0,
    ):
        self.url = url.rstrip("/")
        self.token_file = Path(token_file) if token_file else None
        self.verify: str | bool = str(ca_file) if ca_file else True
        self.timeout = timeout

    @classmethod
    def in_cluster(cls) -> KubeAPI:
        host, port = (
            os.environ.get("KUBERNETES_SERVICE_HOST"),
            os.environ.get("KUBERNETES_SERVICE_PORT"),
        )
        if not host or not port or not (SA_DIR / "token").exists():
            raise KubeAPIError(
                "not in a Kubernetes pod with a service account token "
                "(KUBERNETES_SERVICE_HOST/PORT and the token are needed)"
            )
        host = f"[{host}]" if ":" in host else host
        return cls(f"https://{host}:{port}", SA_DIR / "token", SA_DIR / "ca.crt")

    def get(self, path: str, **params: str) -> dict[str, Any]:
        import requests

        headers = {"Accept": "application/json"}
        if self.token_file is not None:
            headers["Authorization"] = f"Bearer {self.token_file.read_text().strip()}"
        try:
            r = requests.get(
                f"{self.url}{path}",
                params=params,
                headers=headers,
                timeout=self.timeout,
                verify=self.verify,
            )
        except requests.RequestException as exc:
            raise KubeAPIError(f"Kubernetes API {path}: {exc}") from None
        if r.status_code != 200:
            raise KubeAPIError(f"Kubernetes API {path}: {r.status_code} {r.text[:200]}")
        return r.json()

    def list_items(self, path: str, **params: str) -> list[dict[str, Any]]:
        """All items of a list call, following ``continue`` tokens (bounded: 1000 pages)."""
        items: list[dict[str, Any]] = []
        token = ""
        for _ in range(1000):
            page = self.get(path, limit="500", **params, **({"continue": token} if token else {}))
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items
        raise KubeAPIError(f"Kubernetes API {path}: more than 1000 pages")


def default_namespace() -> str | None:
    f = SA_DIR / "namespace"
    return f.read_text().strip() if f.exists() else None


def cpu_cores(quantity: Any) -> float:
    """A Kubernetes CPU quantity ("2", "1.500", "250m") in cores."""
    s = str(quantity).strip()
    if not s:
        return 0.0
    try:
        return float(s[:-1]) / 1000 if s.endswith("m") else float(s)
    except ValueError:
        raise KubeAPIError(f"unreadable CPU quantity {quantity!r}") from None


def _time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t.astimezone(dt.UTC).replace(tzinfo=None)


def _ended(pod: dict[str, Any]) -> dt.datetime | None:
    status = pod.get("status") or {}
    if status.get("phase") not in ("Succeeded", "Failed"):
        return None
    ends = [
        _time(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        for cs in status.get("containerStatuses") or []
    ]
    ended: list[dt.datetime] = [e for e in ends if e is not None]
    # Ended with no recorded finish (evicted before its containers started): nothing after start.
    return max(ended) if ended else _time(status.get("startTime"))


class KubernetesGatewaySource:
    """Schedulers and workers of Dask-Gateway's Kubernetes backend (see the module doc)."""

    name = "gateway"

    def __init__(self, api: KubeAPI, namespace: str, instance: str | None = None):
        self.api, self.namespace, self.instance = api, namespace, instance

    def _selector(self, *terms: str) -> dict[str, str]:
        """A label selector for this gateway instance (all instances when unset) and ``terms``."""
        terms = (f"{INSTANCE_LABEL}={self.instance}",) * bool(self.instance) + terms
        return {"labelSelector": ",".join(terms)} if terms else {}

    def observe(self) -> list[ledger.Running]:
        ns = self.namespace
        clusters = {}
        for obj in self.api.list_items(
            f"/apis/{CRD_GROUP}/{CRD_VERSION}/namespaces/{ns}/daskclusters", **self._selector()
        ):
            spec = obj.get("spec") or {}
            team = (spec.get("options") or {}).get("team") or None
            clusters[obj["metadata"]["name"]] = (
                spec.get("username"),
                team if isinstance(team, str) else None,
            )
        out = []
        for pod in self.api.list_items(
            f"/api/v1/namespaces/{ns}/pods", **self._selector(CLUSTER_LABEL)
        ):
            meta = pod.get("metadata") or {}
            labels = meta.get("labels") or {}
            kind = COMPONENTS.get(labels.get(COMPONENT_LABEL, ""))
            cluster = labels.get(CLUSTER_LABEL)
            started = _time((pod.get("status") or {}).get("startTime"))
            if kind is None or cluster not in clusters or started is None:
                continue  # not a scheduler/worker, its cluster object is gone, or not started
            user, team = clusters[cluster]
            if not user:
                continue
            cores = gpus = 0.0
            for container in (pod.get("spec") or {}).get("containers") or []:
                res = container.get("resources") or {}
                requests_, limits = res.get("requests") or {}, res.get("limits") or {}
                cores += cpu_cores(requests_.get("cpu", limits.get("cpu", 0)))
                gpus += sum(float(limits.get(g, 0) or 0) for g in GPU_RESOURCES)
            out.append(
                ledger.Running(
                    key=f"gateway:{ns}.{cluster}:{meta.get('name')}",
                    kind=kind,
                    username=user,
                    team=team,
                    cores=cores,
                    gpus=gpus,
                    started=started,
                    stopped=_ended(pod),
                )
            )
        return out
