"""Tests against a real Kubernetes cluster (marker ``cluster``; not run in CI).

They use the current kubeconfig context and a release installed with the kind (or minikube)
values, e.g. by ``scripts/kind-up.sh``. Where no cluster is reachable, or the release is not
installed, every test here is skipped with the reason. The helpers are
:mod:`tests.support.cluster`. Environment: ROMAN_NAMESPACE (default roman), ROMAN_RELEASE
(default rp).
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.support import cluster


@pytest.fixture(scope="session")
def platform() -> cluster.Platform:
    probe = cluster.kubectl(
        "version", "--request-timeout=5s", "-o", "json", check=False, timeout=30
    )
    if probe.returncode != 0 or '"serverVersion"' not in probe.stdout:
        pytest.skip(
            f"no Kubernetes cluster reachable from the current kubeconfig: {probe.stderr.strip()[:200]}"
        )
    cm = cluster.kubectl(
        "get",
        "configmap",
        f"{cluster.RELEASE}-hub",
        "-n",
        cluster.NAMESPACE,
        "-o",
        "json",
        check=False,
    )
    if cm.returncode != 0:
        pytest.skip(
            f"release {cluster.RELEASE} is not installed in namespace {cluster.NAMESPACE} (scripts/kind-up.sh installs it)"
        )
    data = json.loads(cm.stdout)["data"]
    values = yaml.safe_load(data["values.yaml"])
    if not values["auth"]["devProvider"]["enabled"]:
        pytest.skip(
            "the release does not run the development OIDC provider (install with the kind values)"
        )
    return cluster.Platform(
        values=values,
        policy=yaml.safe_load(data["policy.yaml"]),
        hub_url=values["hub"]["publicUrl"].rstrip("/"),
        issuer=values["auth"]["oidc"]["issuer"].rstrip("/"),
        user_namespace=values["_chart"]["userNamespace"],
    )


@pytest.fixture(scope="session")
def chart_cluster():
    """The helpers, :mod:`tests.support.cluster`."""
    return cluster
