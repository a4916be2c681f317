"""Dask-Gateway usage on Kubernetes: the sampler reads DaskClusters and their pods.

There is no Kubernetes API server on these machines, so a small HTTP server on 127.0.0.1 stands
in for it: it serves the two list calls the source makes (DaskClusters of the gateway's CRD and
pods), filters by label selector as the API does, pages its answers with ``continue`` tokens and
refuses a wrong bearer token. The objects are shaped as dask-gateway-server's Kubernetes
controller makes them (labels ``gateway.dask.org/instance``, ``gateway.dask.org/cluster``,
``app.kubernetes.io/component``; CPU in ``requests``, GPUs in ``limits``). The ledger is the real
one on the real quota database.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from hub_config.quota.services import ledger
from hub_config.quota.services.kube import KubeAPI, KubeAPIError, KubernetesGatewaySource, cpu_cores
from hub_config.quota.services.sampler import Sampler, build_sources
from hub_config.quota.settings import load_settings

T0 = dt.datetime(2026, 3, 1, 10, 0, 0)
NS = "roman-users"
TOKEN = "sa-token-for-quota"


def iso(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cluster(name: str, user: str, instance: str = "gw", team: str | None = None) -> dict:
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {"gateway.dask.org/instance": instance, "gateway.dask.org/cluster": name},
        },
        "spec": {
            "username": user,
            "options": {"team": team} if team else {},
            "config": {"worker_cores": 2},
        },
    }


def pod(
    name: str,
    cluster_name: str,
    component: str,
    cpu: str | None,
    *,
    instance: str = "gw",
    start: float | None = 0,
    phase: str = "Running",
    finished: float | None = None,
    gpus: int = 0,
) -> dict:
    resources: dict = {"requests": {"memory": "4Gi"}, "limits": {"memory": "4Gi"}}
    if cpu is not None:
        resources["requests"]["cpu"] = cpu
        resources["limits"]["cpu"] = cpu
    if gpus:
        resources["limits"]["nvidia.com/gpu"] = str(gpus)
    status: dict = {"phase": phase}
    if start is not None:
        status["startTime"] = iso(start)
    if finished is not None:
        status["containerStatuses"] = [
            {
                "name": component,
                "state": {"terminated": {"exitCode": 0, "finishedAt": iso(finished)}},
            }
        ]
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {
                "gateway.dask.org/instance": instance,
                "gateway.dask.org/cluster": cluster_name,
                "app.kubernetes.io/component": component,
            },
        },
        "spec": {"containers": [{"name": component, "resources": resources}]},
        "status": status,
    }


def matches(labels: dict, selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, eq, value = term.partition("=")
        if (eq and labels.get(key) != value) or (not eq and key not in labels):
            return False
    return True


class FakeKubeAPI:
    """The list endpoints of a Kubernetes API server, on loopback (see the module doc)."""

    PAGE = 2  # small pages, so the client has to follow ``continue``

    def __init__(self):
        self.clusters: list[dict] = []
        self.pods: list[dict] = []
        self.requests: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                api.requests.append(self.path)
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"kind": "Status", "reason": "Unauthorized"})
                url = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == f"/apis/gateway.dask.org/v1alpha1/namespaces/{NS}/daskclusters":
                    items = api.clusters
                elif url.path == f"/api/v1/namespaces/{NS}/pods":
                    items = api.pods
                else:
                    return self._send(404, {"kind": "Status", "reason": "NotFound"})
                items = [
                    i
                    for i in items
                    if matches(i["metadata"].get("labels", {}), q.get("labelSelector", ""))
                ]
                start = int(q.get("continue") or 0)
                page = items[start : start + api.PAGE]
                more = start + api.PAGE < len(items)
                self._send(
                    200,
                    {
                        "items": page,
                        "metadata": {"continue": str(start + api.PAGE) if more else ""},
                    },
                )

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def kube(tmp_path):
    api = FakeKubeAPI()
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    yield api, token
    api.server.shutdown()
    api.server.server_close()


@pytest.fixture
def members(sessions):
    from hub_config.quota import services as ops

    admin = ops.Actor("root", platform_admin=True)
    with sessions() as s:
        for name in ("alice", "bob", "carol"):
            ops.user(s, name, create=True)
        ops.create_team(s, admin, "lens")
        ops.add_member(s, admin, "lens", "alice")
        s.commit()


def hours(sessions, **kw) -> tuple[float, float]:
    with sessions() as s:
        return ledger.totals(s, T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=1), **kw)


def test_clusters_are_charged_by_requested_cores_and_gpus(kube, sessions, members):
    api, token = kube
    api.clusters = [
        cluster("c1", "alice", team="lens"),
        cluster("c2", "bob"),
        cluster("c3", "carol", team="lens"),  # carol is not in lens
        cluster("x1", "bob", instance="other"),
    ]
    api.pods = [
        pod("c1-sched", "c1", "dask-scheduler", "1.000"),
        pod("c1-w1", "c1", "dask-worker", "2.000"),
        pod("c1-w2", "c1", "dask-worker", "500m", gpus=1),
        pod("c1-w3", "c1", "dask-worker", "2.000", start=None, phase="Pending"),
        pod("c1-w4", "c1", "dask-worker", "2.000", phase="Succeeded", finished=1800),
        pod("c2-sched", "c2", "dask-scheduler", "1"),
        pod("c3-sched", "c3", "dask-scheduler", "1"),
        pod("gone-w1", "deleted-cluster", "dask-worker", "4"),  # its DaskCluster is gone
        pod("x1-w1", "x1", "dask-worker", "8", instance="other"),  # another gateway
        pod("c1-creds", "c1", "credentials", None),  # not a pod that computes
    ]
    source = KubernetesGatewaySource(KubeAPI(api.url, token), NS, instance="gw")
    seen = {r.key: r for r in source.observe()}
    assert set(seen) == {
        f"gateway:{NS}.c1:c1-sched",
        f"gateway:{NS}.c1:c1-w1",
        f"gateway:{NS}.c1:c1-w2",
        f"gateway:{NS}.c1:c1-w4",
        f"gateway:{NS}.c2:c2-sched",
        f"gateway:{NS}.c3:c3-sched",
    }
    assert seen[f"gateway:{NS}.c1:c1-w2"].cores == 0.5 and seen[f"gateway:{NS}.c1:c1-w2"].gpus == 1
    assert seen[f"gateway:{NS}.c1:c1-sched"].kind == "scheduler"
    assert any("continue=" in r for r in api.requests)  # it followed the pages

    sampler = Sampler(sessions, [source], 30.0)
    sampler.sample_once(T0 + dt.timedelta(seconds=60))
    sampler.sample_once(T0 + dt.timedelta(hours=1))
    # alice under lens: 1 h x (1 + 2 + 0.5) cores + 0.5 h x 2 cores; 1 GPU-hour.
    core, gpu = hours(sessions, username="alice", team="lens")
    assert core == pytest.approx(4.5) and gpu == pytest.approx(1.0)
    assert hours(sessions, username="bob")[0] == pytest.approx(1.0)
    # carol named a team she is not in: charged to her own allocation instead.
    assert hours(sessions, username="carol", team="lens")[0] == 0.0
    assert hours(sessions, username="carol", team=None)[0] == pytest.approx(1.0)

    # Worker w1 is deleted (scale-down): charged to about the last sample that saw it, no more.
    api.pods = [p for p in api.pods if p["metadata"]["name"] != "c1-w1"]
    sampler.sample_once(T0 + dt.timedelta(hours=2))
    core, _ = hours(sessions, username="alice", team="lens")
    assert 4.5 + 1.5 + 0.0 <= core <= 4.5 + 1.5 + 2.0 * 30 / 3600 + 1e-9


def test_settings_build_the_kubernetes_source(kube):
    api, token = kube
    settings = load_settings(
        db_url="sqlite://",
        gateway_kube_namespace=NS,
        gateway_kube_instance="gw",
        kube_api_url=api.url,
        kube_token_file=str(token),
    )
    (source,) = build_sources(None, settings)
    api.clusters = [cluster("c1", "alice")]
    api.pods = [pod("c1-sched", "c1", "dask-scheduler", "1")]
    assert [r.username for r in source.observe()] == ["alice"]


def test_api_refusal_is_an_error_the_sampler_survives(kube, sessions, tmp_path, caplog):
    api, _ = kube
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token")
    source = KubernetesGatewaySource(KubeAPI(api.url, wrong), NS, "gw")
    with pytest.raises(KubeAPIError, match="401"):
        source.observe()
    assert Sampler(sessions, [source], 30.0).sample_once(T0) == {}
    assert "source gateway failed" in caplog.text


def test_outside_a_pod_the_in_cluster_client_says_what_is_missing(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubeAPIError, match="KUBERNETES_SERVICE_HOST"):
        KubeAPI.in_cluster()


@pytest.mark.parametrize("quantity,cores", [("2", 2.0), ("1.500", 1.5), ("250m", 0.25), ("", 0.0)])
def test_cpu_quantities(quantity, cores):
    assert cpu_cores(quantity) == cores


def test_unreadable_cpu_quantity_is_refused():
    with pytest.raises(KubeAPIError, match="unreadable CPU quantity"):
        cpu_cores("two")
