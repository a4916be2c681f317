"""What a real cluster would break, checked offline for every example values file (issue 16).

Names, permissions and supply of the chart's own pods; the pods KubeSpawner and the
dask-gateway controller would create are checked in test_kubespawner.py and test_gateway.py
with the same helpers (tests/support/chart.py: url_problems, rbac_allows, supply_problems). There is no
Kubernetes API server here: RBAC is evaluated by chart.rbac_allows, which implements the
RBAC authorizer's rule matching over the rendered Roles, ClusterRoles and bindings.
"""

from __future__ import annotations

import json

import pytest
import yaml

REGISTRY = "registry.example.org/roman"
SUPPLY = {
    "global.registry": REGISTRY,
    "global.imagePullSecret.create": "true",
    "global.imagePullSecret.registry": "registry.example.org",
    "global.imagePullSecret.username": "robot",
    "global.imagePullSecret.password": "s3cret",
}


def _user_ns(chart, objs):
    values = yaml.safe_load(chart.find(objs, "ConfigMap", "rp-hub")["data"]["values.yaml"])
    return values["_chart"]["userNamespace"]


def _container(objs, chart, kind, name):
    return chart.find(objs, kind, name)["spec"]["template"]["spec"]["containers"][0]


# ---------------------------------------------------------------------------- item 1: traefik
def test_traefik_provider_calls_are_allowed(chart, config):
    """Every list/watch traefik's kubernetescrd provider makes is allowed by its RBAC; before
    the fix it also started a cluster-scope Node informer that no Role could grant."""
    objs = chart.render(config)
    args = _container(objs, chart, "Deployment", "rp-traefik")["args"]
    watched = next(
        a.split("=", 1)[1] for a in args if a.startswith("--providers.kubernetescrd.namespaces=")
    )
    namespaces = watched.split(",")
    assert set(namespaces) == {chart.NAMESPACE, _user_ns(chart, objs)}
    denied = []
    for verb, group, res, scope in sorted(chart.traefik_calls(args)):
        for ns in namespaces if scope == "each" else [None]:
            if not chart.rbac_allows(objs, chart.NAMESPACE, "rp-traefik", verb, group, res, ns):
                denied.append(f"{verb} {group or 'core'}/{res} in {ns or 'the cluster'}")
    assert not denied, "traefik's provider would wait forever for: " + ", ".join(denied)


# ---------------------------------------------------------------------------- gateway permissions
@pytest.mark.parametrize("component", ["gateway-api", "gateway-controller"])
def test_gateway_calls_are_allowed(chart, config, component):
    """The calls in the installed dask-gateway-server's kubernetes backend/controller source."""
    objs = chart.render(config)
    calls = (
        chart.gateway_backend_calls()
        if component == "gateway-api"
        else chart.gateway_controller_calls()
    )
    assert ("create", "gateway.dask.org", "daskclusters", "user") in chart.gateway_backend_calls()
    assert ("create", "", "pods", "user") in chart.gateway_controller_calls()
    user_ns = _user_ns(chart, objs)
    denied = [
        f"{v} {g or 'core'}/{r} ({s})"
        for v, g, r, s in sorted(calls)
        if not chart.rbac_allows(
            objs, chart.NAMESPACE, f"rp-{component}", v, g, r, None if s == "cluster" else user_ns
        )
    ]
    assert not denied, f"{component} is refused: {denied}"


# ---------------------------------------------------------------------------- names
def test_chart_pod_urls_resolve(chart, config):
    objs = chart.render(config)
    problems = []
    for who, ns, spec in chart.pod_specs(objs):
        for ct in spec["containers"]:
            env = {e["name"]: e["value"] for e in ct.get("env") or [] if "value" in e}
            problems += chart.url_problems(f"{who}/{ct['name']}", env, ns, objs)
            # arguments such as --url=http://... (the culler, the quota service)
            args = [*(ct.get("command") or []), *(ct.get("args") or [])]
            urls = {f"arg{i}": a.split("=", 1)[-1] for i, a in enumerate(args) if "://" in a}
            problems += chart.url_problems(f"{who}/{ct['name']}", urls, ns, objs)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------- item 10: CRDs
def test_crds_are_installed_the_helm_way(chart):
    """CRDs live in crds/: helm installs them once, skips existing ones (k3s' traefik, another
    release), never templates them (so a second release does not fight over their ownership)."""
    out = chart.helm("template", "rp", str(chart.CHART), "-n", chart.NAMESPACE).stdout
    assert "kind: CustomResourceDefinition" not in out
    crds = [d for d in yaml.safe_load_all(chart.helm("show", "crds", str(chart.CHART)).stdout) if d]
    names = {d["metadata"]["name"] for d in crds}
    assert "daskclusters.gateway.dask.org" in names
    assert {f"{k}.traefik.io" for k in chart.TRAEFIK_CRD_KINDS} <= names
    # Static files: nothing release-specific in them.
    assert not any("rp" == v for d in crds for v in d["metadata"].get("labels", {}).values())


# ---------------------------------------------------------------------------- item 11: upgrades
PINNED = {
    f"hub.secrets.{k}": "x" * 40
    for k in ("proxy-token", "culler-token", "quota-token", "gateway-token")
}
PINNED |= {f"hub.secrets.{k}": "ab" * 32 for k in ("crypt-key", "cookie-secret")}


def test_pinned_secrets_survive_offline_renders(chart):
    """GitOps renders (helm template, Argo CD, Flux) cannot lookup the cluster's Secret: pinned
    keys keep every render identical; unpinned ones would rotate (and log everyone out)."""
    first = chart.find(
        chart.template([], PINNED).stdout
        and [d for d in yaml.safe_load_all(chart.template([], PINNED).stdout) if d],
        "Secret",
        "rp-hub",
    )
    second = chart.find(
        [d for d in yaml.safe_load_all(chart.template([], PINNED).stdout) if d], "Secret", "rp-hub"
    )
    assert first["stringData"] == second["stringData"]
    assert first["stringData"]["crypt-key"] == "ab" * 32
    unpinned = [
        chart.find(
            [d for d in yaml.safe_load_all(chart.template([]).stdout) if d], "Secret", "rp-hub"
        )
        for _ in range(2)
    ]
    assert unpinned[0]["stringData"]["proxy-token"] != unpinned[1]["stringData"]["proxy-token"]
    # The values ConfigMap the hub mounts never carries them.
    cm = chart.find(chart.render("default", PINNED), "ConfigMap", "rp-hub")["data"]["values.yaml"]
    assert "x" * 40 not in cm and "ab" * 32 not in cm
    bad = chart.template([], {"hub.secrets.crypt-key": "short"}, check=False)
    assert bad.returncode != 0 and "crypt-key" in bad.stderr


@pytest.mark.parametrize(
    "deployment,change",
    [
        ("rp-gateway-api", {"daskGateway.logLevel": "DEBUG"}),
        ("rp-gateway-api", {"daskGateway.cluster.scheduler.cores.limit": "2"}),
        ("rp-gateway-controller", {"daskGateway.controller.completedClusterMaxAge": "60"}),
        ("rp-hub", {"hub.concurrentSpawnLimit": "10"}),
    ],
)
def test_config_changes_restart_their_pods(chart, deployment, change):
    def checksum(sets):
        tpl = chart.find(chart.render("default", sets), "Deployment", deployment)["spec"][
            "template"
        ]
        return tpl["metadata"].get("annotations", {})

    assert checksum({}) and checksum({}) == checksum({})
    assert checksum(change) != checksum({}), (
        f"changing {change} leaves {deployment} running the old config"
    )


# ---------------------------------------------------------------------------- item 4: supply
@pytest.mark.parametrize("config", ["default", "cloud-production"])
def test_images_from_the_registry_and_pull_secrets_everywhere(chart, config):
    objs = chart.render(config, SUPPLY)
    problems = []
    for who, _ns, spec in chart.pod_specs(objs):
        problems += chart.supply_problems(who, spec, REGISTRY, ["rp-image-pull"])
    assert not problems, "\n".join(problems)
    # The pull secret exists where the pods run: both namespaces.
    where = {
        o["metadata"].get("namespace")
        for o in objs
        if o["kind"] == "Secret" and o["metadata"]["name"] == "rp-image-pull"
    }
    assert where == {chart.NAMESPACE, _user_ns(chart, objs)}
    # An image that names its own registry is taken from the mirror under the same path.
    proxy = _container(objs, chart, "Deployment", "rp-proxy")["image"]
    assert proxy.startswith(f"{REGISTRY}/jupyterhub/configurable-http-proxy:")
    # The tier policy's image (what TierKubeSpawner runs) and the Dask pods' image too.
    policy = yaml.safe_load(chart.find(objs, "ConfigMap", "rp-hub")["data"]["policy.yaml"])
    assert policy["images"]["default"] == f"{REGISTRY}/roman-platform/notebook:0.1.0"
    # Every environment's image comes from the mirror too: the default runs the singleuser image,
    # the previous one its own tag behind global.registry (issue 18).
    envs = {e["name"]: e for e in policy["environments"]}
    assert envs["2026.3"]["image"] == policy["images"]["default"]
    assert envs["2026.2"]["image"] == f"{REGISTRY}/roman-platform/notebook:2026.2"
    gateway = json.loads(chart.find(objs, "ConfigMap", "rp-gateway-api")["data"]["gateway.json"])
    assert gateway["image"] == f"{REGISTRY}/roman-platform/notebook:0.1.0"


def test_one_hub_image_value(chart):
    """The culler, quota service, gateway and dev OIDC provider run hub.image unless set."""
    objs = chart.render("kind", {"hub.image.tag": "0.2.0"})
    for name in ("rp-hub", "rp-culler", "rp-gateway-api", "rp-gateway-controller", "rp-oidc-dev"):
        assert _container(objs, chart, "Deployment", name)["image"] == "roman-platform/hub:0.2.0", (
            name
        )


# ---------------------------------------------------------------------------- item 6: kind data
@pytest.mark.parametrize("config", ["kind", "minikube"])
def test_development_clusters_have_data(chart, config):
    """The kind/minikube examples fill a sample-survey volume (`roman-platform data sample`,
    the platform's own CLI) and mount it read-only; test_gateway checks the Dask pods mount it."""
    from platform_lib.cli import build_parser

    objs = chart.render(config)
    pvc = chart.find(objs, "PersistentVolumeClaim", "rp-sample-data")
    job = chart.find(objs, "Job", "rp-sample-data")["spec"]["template"]["spec"]
    ct = job["containers"][0]
    assert job["volumes"][0]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert "roman-platform data sample /data/roman" in ct["command"][2]
    # The arguments parse with the real command line (after `data sample /data/roman`).
    build_parser().parse_args(["data", "sample", "/data/roman", *ct["args"]])
    values = yaml.safe_load(chart.find(objs, "ConfigMap", "rp-hub")["data"]["values.yaml"])
    assert values["data"]["volume"]["enabled"] is True
    api = json.loads(chart.find(objs, "ConfigMap", "rp-gateway-api")["data"]["gateway.json"])
    assert {"name": "roman-data", "claim_name": "rp-sample-data", "mount_path": "/data/roman"} in (
        api["volumes"]
    )


def test_account_page_links_where_the_browser_can_go(monkeypatch):
    """Item 9: /roman/account and the status bar link to the public quota URL, not the
    in-cluster name the server itself uses."""
    from platform_lib import account_extension

    monkeypatch.setenv("ROMAN_QUOTA_URL", "http://rp-proxy-public.roman.svc:80/services/quota/")
    monkeypatch.setenv("ROMAN_QUOTA_PUBLIC_URL", "https://roman.example.org/services/quota/")
    assert account_extension._public_service_url() == "https://roman.example.org/services/quota/"
    monkeypatch.delenv("ROMAN_QUOTA_PUBLIC_URL")  # the local platform: one URL for both
    assert (
        account_extension._public_service_url()
        == "http://rp-proxy-public.roman.svc:80/services/quota/"
    )


# ---------------------------------------------------------------------------- also: pre-puller, CHP
def test_notebook_image_is_prepulled_on_every_node(chart):
    objs = chart.render("cloud-production", SUPPLY)
    ds = chart.find(objs, "DaemonSet", "rp-image-puller")
    assert ds["metadata"]["namespace"] == "roman-users"
    spec = ds["spec"]["template"]["spec"]
    policy = yaml.safe_load(chart.find(objs, "ConfigMap", "rp-hub")["data"]["policy.yaml"])
    # The image users' servers and Dask pods run (the policy's default, also KubeClusterConfig.image).
    assert [c["image"] for c in spec["initContainers"]] == [policy["images"]["default"]]
    assert not chart.supply_problems("DaemonSet/rp-image-puller", spec, REGISTRY, ["rp-image-pull"])
    assert "rp-image-puller" not in {
        o["metadata"]["name"] for o in chart.render("kind") if o["kind"] == "DaemonSet"
    }


def test_proxy_runs_the_local_platforms_chp_release(chart):
    import re

    script = (chart.REPO / "scripts" / "install-node-tools.sh").read_text()
    local = re.search(r"^CHP_VERSION=(\S+)", script, re.M).group(1)
    image = _container(chart.render("default"), chart, "Deployment", "rp-proxy")["image"]
    assert image == f"quay.io/jupyterhub/configurable-http-proxy:{local}"


def test_existing_pull_secrets_by_name_or_object(chart):
    """global.imagePullSecrets takes z2jh's plain names as well as {name: ...} objects."""
    objs = chart.render(
        "cloud-production",
        {"global.imagePullSecrets[0]": "regcred", "global.imagePullSecrets[1].name": "other"},
    )
    problems = []
    for who, _ns, spec in chart.pod_specs(objs):
        problems += chart.supply_problems(who, spec, "", ["regcred", "other"])
    assert not problems, "\n".join(problems)
    values = yaml.safe_load(chart.find(objs, "ConfigMap", "rp-hub")["data"]["values.yaml"])
    assert values["_chart"]["pullSecrets"] == [
        "regcred",
        "other",
    ]  # KubeSpawner's and the gateway's
