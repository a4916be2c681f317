"""helm lint + helm template for the default and example values; every object validated.

Built-in kinds are validated against the Kubernetes OpenAPI schemas (kubernetes-validate, offline,
strict: unknown fields are errors); the traefik objects against the chart's own CRD schemas.
"""

from __future__ import annotations

import jsonschema
import kubernetes_validate
import pytest


def crd_schemas(objs):
    """(group, kind) -> the openAPIV3Schema of each CRD the chart renders."""
    out = {}
    for o in objs:
        if o["kind"] == "CustomResourceDefinition":
            spec = o["spec"]
            for version in spec["versions"]:
                out[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = version[
                    "schema"
                ]["openAPIV3Schema"]
    return out


def test_lint(chart, config):
    proc = chart.helm(
        "lint", "--strict", str(chart.CHART), *chart.value_args(chart.CONFIGS[config])
    )
    assert "0 chart(s) failed" in proc.stdout


def test_every_object_is_valid(chart, config):
    objs = chart.render(config)
    crds = crd_schemas(objs)
    problems, custom = [], 0
    for obj in objs:
        key = (obj["apiVersion"], obj["kind"])
        if key in crds:
            custom += 1
            try:
                # CRD schemas are OpenAPI v3.0 (draft-4 style).
                jsonschema.Draft4Validator(crds[key]).validate(obj)
            except jsonschema.ValidationError as exc:
                problems.append(f"{chart.obj_id(obj)}: {exc.message}")
            continue
        try:
            kubernetes_validate.validate(obj, chart.K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{chart.obj_id(obj)}: {exc.message} at {list(exc.path)}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(
                f"{chart.obj_id(obj)}: no schema for {key} (neither Kubernetes nor our CRDs)"
            )
    assert not problems, "\n".join(problems)
    assert custom >= 3  # the gateway's IngressRoute and Middlewares were checked, not skipped


def test_renders_what_the_platform_needs(chart, config):
    objs = chart.render(config)
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objs}
    for kind, name in [
        ("Deployment", "rp-hub"),
        ("Service", "rp-hub"),
        ("ServiceAccount", "rp-hub"),
        ("Role", "rp-hub"),
        ("RoleBinding", "rp-hub"),
        ("ConfigMap", "rp-hub"),
        ("Secret", "rp-hub"),
        ("Deployment", "rp-proxy"),
        ("Service", "rp-proxy-api"),
        ("Service", "rp-proxy-public"),
        ("Deployment", "rp-culler"),
        ("Deployment", "rp-gateway-api"),
        ("Deployment", "rp-gateway-controller"),
        ("Deployment", "rp-traefik"),
        ("CustomResourceDefinition", "daskclusters.gateway.dask.org"),
        ("CustomResourceDefinition", "ingressroutes.traefik.io"),
        ("NetworkPolicy", "rp-default-deny"),
        ("ResourceQuota", "rp-users"),
        ("LimitRange", "rp-users"),
        ("PodDisruptionBudget", "rp-hub"),
        ("PodDisruptionBudget", "rp-proxy"),
    ]:
        assert (kind, name) in kinds, f"{config}: {kind} {name} not rendered"
    # The hub's database: a PVC with SQLite, nothing when the URL is external.
    hub_pvc = ("PersistentVolumeClaim", "rp-hub-db") in kinds
    assert hub_pvc == (config != "cloud-production")


def _granted(role):
    return {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def test_hub_rbac_is_what_kubespawner_needs_and_no_more(chart):
    granted = _granted(chart.find(chart.render("default"), "Role", "rp-hub"))
    assert ("", "pods", "create") in granted and ("", "persistentvolumeclaims", "create") in granted
    assert ("", "events", "list") in granted
    # With SQLite the quota service runs in the hub pod and reads the gateway's clusters.
    kubespawner = {(g, r, v) for g, r, v in granted if g == ""}
    assert {(g, r, v) for g, r, v in granted if g} == {
        ("gateway.dask.org", "daskclusters", "get"),
        ("gateway.dask.org", "daskclusters", "list"),
    }
    assert not {r for _, r, _ in kubespawner} - {"pods", "persistentvolumeclaims", "events"}
    assert not {v for _, _, v in kubespawner} - {"get", "watch", "list", "create", "delete"}
    # With an external database the quota service has its own Deployment and Role instead.
    external = _granted(chart.find(chart.render("cloud-production"), "Role", "rp-hub"))
    assert not {g for g, _, _ in external if g}
    assert not any(
        o["kind"] == "ClusterRoleBinding" and "hub" in o["metadata"]["name"]
        for o in chart.render("default")
    )


def test_cloud_production_example(chart):
    objs = chart.render("cloud-production")
    ingress = chart.find(objs, "Ingress", "rp-hub")
    assert ingress["spec"]["tls"][0]["secretName"] == "roman-platform-tls"
    assert not any(o["metadata"]["name"] == "rp-oidc-dev" for o in objs)
    placeholder = chart.find(objs, "Deployment", "rp-placeholder")
    assert placeholder["metadata"]["namespace"] == "roman-users"
    assert placeholder["spec"]["template"]["spec"]["priorityClassName"] == "rp-placeholder"
    assert chart.find(objs, "PriorityClass", "rp-placeholder")["value"] < 0
    # Separate user namespace: quota, limits, RBAC and default deny live there.
    for kind in ("ResourceQuota", "LimitRange", "Role"):
        assert any(
            o["kind"] == kind and o["metadata"].get("namespace") == "roman-users" for o in objs
        ), kind
    teams = [
        o
        for o in objs
        if o["kind"] == "PersistentVolumeClaim"
        and "roman.stsci.edu/team" in o["metadata"]["labels"]
    ]
    assert {t["metadata"]["labels"]["roman.stsci.edu/team"] for t in teams} == {
        "hlwas",
        "galaxies",
        "transients",
    }
    assert all(t["spec"]["accessModes"] == ["ReadWriteMany"] for t in teams)
    sa = chart.find(objs, "ServiceAccount", "rp-singleuser")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    assert sa["automountServiceAccountToken"] is False


@pytest.mark.parametrize("config_name", ["kind", "minikube"])
def test_development_examples_deploy_the_dev_provider(chart, config_name):
    objs = chart.render(config_name)
    dev = chart.find(objs, "Deployment", "rp-oidc-dev")
    args = dev["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "hub_config.oidc_dev" in args
    svc = chart.find(objs, "Service", "rp-oidc-dev")
    assert svc["spec"]["ports"][0]["nodePort"] == 30081


def test_generated_secrets(chart):
    import re

    data = chart.find(chart.render("default"), "Secret", "rp-hub")["stringData"]
    for key in ("crypt-key", "cookie-secret"):
        assert re.fullmatch(r"[0-9a-f]{64}", data[key]), key  # 32 bytes hex, as JupyterHub wants
    for key in ("proxy-token", "culler-token", "quota-token", "gateway-token"):
        assert len(data[key]) >= 32, key
    assert len({data[k] for k in data}) == len(data)  # no token shared between two purposes
    assert "client-secret" not in data  # production: the OIDC secret lives in its own Secret


def test_cluster_wide_rights_are_only_what_dask_gateway_watches(chart):
    """dask-gateway's informers list cluster-wide; everything else is namespaced."""
    objs = chart.render("cloud-production")
    cluster_roles = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ClusterRole"}
    assert set(cluster_roles) == {"rp-gateway-api", "rp-gateway-controller"}
    for role in cluster_roles.values():
        for rule in role["rules"]:
            writes = set(rule["verbs"]) - {"get", "list", "watch"}
            if writes:  # cluster-wide writes only on DaskCluster objects
                assert rule["apiGroups"] == ["gateway.dask.org"], (role["metadata"]["name"], rule)
    traefik_args = chart.find(objs, "Deployment", "rp-traefik")["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert "--providers.kubernetescrd.namespaces=roman,roman-users" in traefik_args
