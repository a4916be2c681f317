"""The NetworkPolicies allow exactly the paths the platform needs (evaluated from the rendered
policies: Kubernetes' own selection rules, applied in both directions)."""

from __future__ import annotations

import pytest


def pod(chart, component, ns=None, **extra):
    return (ns or chart.NAMESPACE, {"app.kubernetes.io/name": "roman-platform", "app.kubernetes.io/instance": "rp",
                                    "app.kubernetes.io/component": component, **extra})


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


def test_user_pods_reach_data_endpoints_only(chart):
    objs = chart.render("cloud-production")
    user = pod(chart, "singleuser-server", "roman-users")
    assert chart.reachable(objs, user, "52.217.1.10", 443)       # the S3 endpoint range
    assert not chart.reachable(objs, user, "52.217.1.10", 22)
    assert not chart.reachable(objs, user, "8.8.8.8", 443)       # anything else outside
    assert not chart.reachable(objs, user, "100.64.0.1", 443)     # the Kubernetes API (a service address)
    hub = pod(chart, "hub")
    assert chart.reachable(objs, hub, "100.64.0.1", 443)          # KubeSpawner needs it


def test_unlabelled_pods_are_isolated(chart):
    """Anything else in the namespaces (a user's stray pod) is caught by the default deny."""
    objs = chart.render("kind")
    stray = (chart.NAMESPACE, {"app": "stray"})
    assert not chart.reachable(objs, stray, pod(chart, "hub"), 8081)
    assert not chart.reachable(objs, pod(chart, "singleuser-server"), stray, 80)
    assert not chart.reachable(objs, stray, "8.8.8.8", 443)
