"""The NetworkPolicies allow exactly the paths the platform needs (evaluated from the rendered
policies: Kubernetes' own selection rules, applied in both directions)."""

from __future__ import annotations

import pytest


def pod(chart, component, ns=None, **extra):
    return (
        ns or chart.NAMESPACE,
        {
            "app.kubernetes.io/name": "roman-platform",
            "app.kubernetes.io/instance": "rp",
            "app.kubernetes.io/component": component,
            **extra,
        },
    )


FLOWS = [
    # (source, destination, port, allowed)
    ("proxy", "hub", 8081, True),
    ("singleuser-server", "hub", 8081, True),
    ("singleuser-server", "traefik", 8000, True),
    ("singleuser-server", "traefik", 8786, True),
    ("singleuser-server", "proxy", 8000, True),
    ("hub", "singleuser-server", 8888, True),
    ("proxy", "singleuser-server", 8888, True),
    ("traefik", "gateway-api", 8000, True),
    ("traefik", "dask-scheduler", 8786, True),
    ("dask-scheduler", "gateway-api", 8000, True),
    ("dask-worker", "dask-scheduler", 8786, True),
    ("culler", "hub", 8081, True),
    ("hub", "traefik", 8000, True),
    # What must stay closed.
    ("singleuser-server", "singleuser-server", 8888, False),
    ("singleuser-server", "gateway-api", 8000, False),
    ("singleuser-server", "proxy", 8001, False),
    ("singleuser-server", "hub", 8090, False),
    ("singleuser-server", "dask-worker", 8786, False),
    ("dask-worker", "hub", 8081, False),
    ("dask-scheduler", "hub", 8081, False),
    ("culler", "proxy", 8001, False),
    ("gateway-controller", "hub", 8081, False),
    ("traefik", "hub", 8081, False),
]


@pytest.mark.parametrize("config", ["kind", "cloud-production"])
def test_flows(chart, config):
    objs = chart.render(config)
    user_ns = "roman-users" if config == "cloud-production" else chart.NAMESPACE
    in_user_ns = {"singleuser-server", "dask-scheduler", "dask-worker"}
    wrong = []
    for src, dst, port, allowed in FLOWS:
        s = pod(chart, src, user_ns if src in in_user_ns else None)
        d = pod(chart, dst, user_ns if dst in in_user_ns else None)
        if chart.reachable(objs, s, d, port) != allowed:
            wrong.append(f"{src} -> {dst}:{port} should be {'allowed' if allowed else 'denied'}")
    assert not wrong, "\n".join(wrong)


def test_user_pods_reach_data_endpoints_and_the_internet_not_the_cluster(chart):
    objs = chart.render("cloud-production")
    user = pod(chart, "singleuser-server", "roman-users")
    assert chart.reachable(objs, user, "52.217.1.10", 443)  # the S3 endpoint range
    assert chart.reachable(objs, user, "8.8.8.8", 443)  # pip, MAST, git: public egress
    assert not chart.reachable(objs, user, "169.254.169.254", 80)  # the cloud metadata server
    assert not chart.reachable(
        objs, user, "100.64.0.1", 443
    )  # the Kubernetes API (a service address)
    hub = pod(chart, "hub")
    assert chart.reachable(objs, hub, "100.64.0.1", 443)  # KubeSpawner needs it


def test_only_the_releases_pods_are_isolated(chart):
    """A stray pod of someone else in the namespace (cert-manager's HTTP-01 solver) is not
    selected by the release's default deny; the release's pods still refuse it."""
    objs = chart.render("kind")
    stray = (chart.NAMESPACE, {"acme.cert-manager.io/http01-solver": "true"})
    assert chart.reachable(objs, stray, "8.8.8.8", 443)
    assert not chart.reachable(objs, stray, pod(chart, "hub"), 8081)
    assert not chart.reachable(objs, pod(chart, "singleuser-server"), stray, 80)


# ----------------------------------------------------------------------- network-config-analyzer
# Workloads are the chart's Deployments plus pods labelled as KubeSpawner (common_labels +
# component=singleuser-server, see test_kubespawner) and the gateway controller (test_gateway)
# label theirs, and a foreign pod (cert-manager's HTTP-01 solver).
def _pod(name, ns, labels):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "c:1"}]},
    }


PUBLIC, METADATA, INTERNAL = "8.8.8.8", "169.254.169.254", "100.64.0.1"
S3 = "52.217.1.10"  # inside cloud-production's data.egressCIDRs

#: (source, destination, port, allowed) — "user" is a notebook, "user2" another user's notebook.
MATRIX = [
    ("user", "hub", 8081, True),
    ("user", "traefik", 8000, True),
    ("user", "traefik", 8786, True),
    ("user", "proxy", 8000, True),
    ("user", PUBLIC, 443, True),
    ("user", PUBLIC, 22, True),
    ("user", METADATA, 80, False),
    ("user", INTERNAL, 443, False),
    ("user", INTERNAL, 5432, False),
    ("user", "user2", 8888, False),
    ("user", "worker", 8786, False),
    ("user", "gateway-api", 8000, False),
    ("user", "proxy", 8001, False),
    ("user", "hub", 8090, False),
    ("worker", "scheduler", 8786, True),
    ("scheduler", "worker", 40000, True),
    ("worker", PUBLIC, 443, True),
    ("worker", PUBLIC, 22, False),
    ("worker", METADATA, 80, False),
    ("worker", INTERNAL, 5432, False),
    ("worker", "hub", 8081, False),
    ("traefik", "scheduler", 8786, True),
    ("traefik", "scheduler", 8787, True),
    ("traefik", "gateway-api", 8000, True),
    ("traefik", "hub", 8081, False),
    ("hub", "user", 8888, True),
    ("proxy", "user", 8888, True),
    ("hub", INTERNAL, 443, True),  # the Kubernetes API
    ("culler", "hub", 8081, True),
    ("culler", "proxy", 8001, False),
    ("stray", PUBLIC, 443, True),
    ("stray", "hub", 8081, False),
    ("hub", "stray", 80, False),
    ("scheduler", "hub", 8081, False),
    ("gateway-controller", "hub", 8081, False),
]
#: only in the configurations with the stated feature
MATRIX_PRODUCTION = [
    ("user", S3, 443, True),
    ("user", "quota", 8090, True),
    ("hub", INTERNAL, 5432, True),
    ("quota", INTERNAL, 5432, True),  # external PostgreSQL
    ("proxy", INTERNAL, 5432, False),
    ("traefik", INTERNAL, 5432, False),
]
MATRIX_SQLITE = [("hub", INTERNAL, 5432, False)]  # no database server to reach


@pytest.mark.parametrize("config", ["default", "kind", "minikube", "cloud-production"])
def test_connectivity_matrix(chart, config, tmp_path):
    objs = chart.render(config)
    user_ns = "roman-users" if config == "cloud-production" else chart.NAMESPACE

    def labels(component, **extra):
        return {
            "app.kubernetes.io/name": "roman-platform",
            "app.kubernetes.io/instance": "rp",
            "app.kubernetes.io/component": component,
            **extra,
        }

    pods = {
        "user": _pod("jupyter-rosa", user_ns, labels("singleuser-server", app="jupyterhub")),
        "user2": _pod("jupyter-erin", user_ns, labels("singleuser-server", app="jupyterhub")),
        "scheduler": _pod("dask-scheduler-1", user_ns, labels("dask-scheduler")),
        "worker": _pod("dask-worker-1", user_ns, labels("dask-worker")),
        "stray": _pod(
            "cm-acme-http-solver", chart.NAMESPACE, {"acme.cert-manager.io/http01-solver": "true"}
        ),
    }
    lines = chart.connectivity(objs, list(pods.values()), tmp_path)

    def endpoint(name):
        if name[0].isdigit():
            return name
        if name in pods:
            return f"{pods[name]['metadata']['namespace']}/{pods[name]['metadata']['name']}"
        return f"{chart.NAMESPACE}/rp-{name}"

    matrix = MATRIX + (MATRIX_PRODUCTION if config == "cloud-production" else MATRIX_SQLITE)
    wrong = [
        f"{s} -> {d}:{port} should be {'allowed' if ok else 'denied'}"
        for s, d, port, ok in matrix
        if chart.nca_allows(lines, endpoint(s), endpoint(d), port) != ok
    ]
    assert not wrong, "\n".join(wrong)
