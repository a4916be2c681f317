"""Dask-Gateway on Kubernetes: what its backend and controller would create, validated offline.

The gateway API's config and the controller's config are the files the chart renders; the
backend's ``make_cluster_object`` (the DaskCluster it would POST) is validated against the chart's
DaskCluster CRD schema, and the controller's ``make_pod``/``make_secret``/``make_service``/
``make_ingressroute*`` against Kubernetes' schemas and the chart's traefik CRDs. Neither is set up
(``setup()`` would connect to the API server, which this machine does not have).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from types import SimpleNamespace

import jsonschema
import kubernetes_validate
import pytest
from traitlets.config.loader import PyFileConfigLoader


def _run(coro):
    """``asyncio.run`` in a thread of its own: a Playwright browser opened by an earlier test in
    the same session keeps an event loop running in this thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


GIB = 1024**3


def _crd_schema(objs, group_version, kind):
    for o in objs:
        if o["kind"] == "CustomResourceDefinition" and o["spec"]["names"]["kind"] == kind:
            for v in o["spec"]["versions"]:
                if f"{o['spec']['group']}/{v['name']}" == group_version:
                    return v["schema"]["openAPIV3Schema"]
    raise AssertionError(f"no CRD for {group_version} {kind}")


@pytest.fixture(params=["kind", "cloud-production"])
def gateway(chart, tmp_path, request, monkeypatch):
    param, sets = request.param if isinstance(request.param, tuple) else (request.param, None)
    objs = chart.render(param, sets)
    api_cm = chart.find(objs, "ConfigMap", "rp-gateway-api")["data"]
    ctl_cm = chart.find(objs, "ConfigMap", "rp-gateway-controller")["data"]
    (tmp_path / "api").mkdir()
    (tmp_path / "ctl").mkdir()
    for key, text in api_cm.items():
        (tmp_path / "api" / key).write_text(text)
    for key, text in ctl_cm.items():
        (tmp_path / "ctl" / key).write_text(text)
    monkeypatch.setenv("ROMAN_POLICY_FILE", str(tmp_path / "api" / "policy.yaml"))
    api_cfg = PyFileConfigLoader("dask_gateway_config.py", path=str(tmp_path / "api")).load_config()
    ctl_cfg = PyFileConfigLoader("dask_gateway_config.py", path=str(tmp_path / "ctl")).load_config()
    from dask_gateway_server.backends.kubernetes.backend import KubeBackend
    from dask_gateway_server.backends.kubernetes.controller import KubeController

    from hub_config.policy import load_policy

    backend_class = api_cfg.DaskGateway.backend_class
    assert issubclass(backend_class, KubeBackend)
    backend = backend_class(config=api_cfg)
    controller = KubeController(config=ctl_cfg)
    return SimpleNamespace(
        objs=objs,
        backend=backend,
        controller=controller,
        config=param,
        policy=load_policy(os.environ["ROMAN_POLICY_FILE"]),
    )


@pytest.mark.parametrize("tier", ["entry", "research", "team", "consortium"])
def test_cluster_objects_per_tier(chart, gateway, tier):
    lim = gateway.policy.gateway_limits(tier)
    user = SimpleNamespace(name="astro", groups=[f"tier-{tier}"])
    request = {"worker_cores": lim.worker_cores.max, "worker_memory": lim.worker_memory_gib.max}
    options, config = _run(gateway.backend.process_cluster_options(user, request))
    obj = gateway.backend.make_cluster_object(user.name, options, config)
    # CRD schemas are OpenAPI v3.0: draft-4 style (boolean exclusiveMinimum).
    jsonschema.Draft4Validator(
        _crd_schema(gateway.objs, obj["apiVersion"], "DaskCluster")
    ).validate(obj)
    spec = obj["spec"]["config"]
    assert spec["worker_cores"] == lim.worker_cores.max
    assert spec["worker_memory"] == int(lim.worker_memory_gib.max * GIB)
    # The worker cap is the policy's, for workers; the scheduler comes on top (hub_config.gateway).
    assert 1 <= spec["cluster_max_workers"] <= lim.max_workers
    assert spec["cluster_max_workers"] * spec["worker_cores"] <= lim.max_cores_per_cluster
    assert (
        spec["cluster_max_cores"] == lim.max_cores_per_cluster + spec["scheduler_cores"]
    )  # workers + scheduler
    assert spec["idle_timeout"] == lim.idle_timeout_s
    assert spec["environment"]["ROMAN_TIER"] == tier
    assert spec["namespace"] == (
        "roman-users" if gateway.config == "cloud-production" else chart.NAMESPACE
    )
    assert chart.image_problem(spec["image"]) is None
    # Over the tier's range: refused by the options' own bounds, with the tier in the message.
    too_much = {"worker_cores": lim.worker_cores.max + 1}
    with pytest.raises(Exception, match="worker_cores"):
        _run(gateway.backend.process_cluster_options(user, too_much))

    # What the controller would create for this cluster.
    from dask_gateway_server.backends.kubernetes.backend import KubeClusterConfig

    ns, name = spec["namespace"], obj["metadata"]["name"]
    cfg = KubeClusterConfig(
        **{k: v for k, v in spec.items() if k in KubeClusterConfig.class_trait_names()}
    )
    ctl = gateway.controller
    made = [
        ctl.make_pod(ns, name, cfg, is_worker=False),
        ctl.make_pod(ns, name, cfg, is_worker=True),
        ctl.make_secret(name),
        ctl.make_service(name),
        ctl.make_ingressroute(name, ns),
        ctl.make_ingressroutetcp(name, ns),
    ]
    # The controller hands pods, secrets and services to typed client calls, which add these.
    for o, kind in zip(made[:4], ["Pod", "Pod", "Secret", "Service"]):
        o.setdefault("apiVersion", "v1")
        o.setdefault("kind", kind)
    for o in made:
        o.setdefault("metadata", {}).setdefault("name", name)
        if o.get("apiVersion", "").startswith("traefik.io/"):
            jsonschema.Draft4Validator(
                _crd_schema(gateway.objs, o["apiVersion"], o["kind"])
            ).validate(o)
        else:
            # dask-gateway writes the headless Service's ports with a snake_case "target_port",
            # which the API server drops (the ports are the same numbers): validate that one
            # without strict unknown-field checking, everything else strictly.
            strict = o["kind"] != "Service"
            kubernetes_validate.validate(o, chart.K8S_VERSION, strict=strict)
    sched, worker = made[0], made[1]
    for pod in (sched, worker):
        who = f"{pod['metadata']['labels']['app.kubernetes.io/component']} of {tier}"
        # Dask writes spill files next to itself: a writable root is the one allowed exception.
        assert not chart.pod_problems(who, pod["spec"], writable_root_ok=True)
        assert pod["spec"]["automountServiceAccountToken"] is False
        assert not chart.netpol_problems(gateway.objs, [(who, ns, pod["metadata"]["labels"])])
        # Names: the controller's env (DASK_GATEWAY_API_URL, ...) resolves from the user namespace.
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env") or []}
        assert env.get("DASK_GATEWAY_API_URL"), sorted(env)
        assert not chart.url_problems(who, env, ns, gateway.objs)
        # Workload identity: the user servers' service account (its cloud role), not "default".
        assert pod["spec"]["serviceAccountName"] == "rp-singleuser"
        assert any(
            o["kind"] == "ServiceAccount"
            and o["metadata"]["name"] == "rp-singleuser"
            and o["metadata"].get("namespace", chart.NAMESPACE) == ns
            for o in gateway.objs
        )
    wres = worker["spec"]["containers"][0]["resources"]
    assert float(wres["limits"]["cpu"]) == lim.worker_cores.max
    assert int(wres["limits"]["memory"]) == int(lim.worker_memory_gib.max * GIB)
    # The traefik routes carry the instance label traefik watches.
    route = made[4]
    assert route["metadata"]["labels"]["gateway.dask.org/instance"] == "rp-gateway"


def _cluster(name, username, tier, cores, memory_gib, status=None):
    from dask_gateway_server import models

    return models.Cluster(
        name=name,
        username=username,
        token="t",
        options={},
        config={
            "worker_cores": cores,
            "worker_memory": int(memory_gib * GIB),
            "cluster_max_workers": 1000,
            "environment": {"ROMAN_TIER": tier},
        },
        status=status or models.ClusterStatus.RUNNING,
    )


def test_per_user_totals_on_kubernetes(gateway):
    """The tier's totals across a user's clusters, on KubeBackend (API calls mocked: no server)."""
    from unittest import mock

    from dask_gateway_server.backends.base import PublicException

    backend = gateway.backend
    lim = gateway.policy.gateway_limits("research")  # 24 workers, 48 cores, 192 GiB in total
    backend.clusters = {
        "ns.a": _cluster("ns.a", "rosa", "research", 2, 8),
        "ns.b": _cluster("ns.b", "rosa", "research", 2, 8),
        "ns.other": _cluster("ns.other", "chen", "research", 2, 8),
    }
    backend.custom_client = mock.MagicMock()
    backend.custom_client.patch_namespaced_custom_object = mock.AsyncMock()
    # Cluster a asks (adaptive, by heartbeat) for everything: it gets the whole total.
    _run(
        backend.on_cluster_heartbeat(
            "ns.a",
            {"count": 1000, "active_workers": [], "closing_workers": [], "closed_workers": []},
        )
    )
    first = backend.custom_client.patch_namespaced_custom_object.call_args.args[-1][0]["value"]
    assert first == min(
        lim.max_total_workers, int(lim.max_total_cores // 2), int(lim.max_total_memory_gib // 8)
    )
    # Cluster b now gets only what is left of the user's totals; another user is unaffected.
    allowed, warning = backend.allowed_workers("ns.b", 10)
    assert allowed == 0 and "in total across all your clusters" in warning
    assert backend.allowed_workers("ns.other", 10) == (10, None)
    # A third cluster beyond the tier's max_clusters (2 for research) is refused before any API call.
    user = SimpleNamespace(name="rosa", groups=["tier-research"])
    with pytest.raises(PublicException, match="may run 2 cluster"):
        _run(backend.start_cluster(user, {}))


def test_gateway_quota_check_reads_the_quota_database_when_external(chart):
    """hub_config.gateway checks quotas on start/scale when ROMAN_QUOTA_DB_URL is set."""

    def env(config):
        dep = chart.find(chart.render(config), "Deployment", "rp-gateway-api")
        return {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}

    prod = env("cloud-production")["ROMAN_QUOTA_DB_URL"]["valueFrom"]["secretKeyRef"]
    assert prod == {"name": "roman-platform-quota-db", "key": "db-url"}
    assert "ROMAN_QUOTA_DB_URL" not in env("kind")  # SQLite: only the hub pod can read it


SUPPLY = {
    "global.registry": "registry.example.org/roman",
    "global.imagePullSecret.create": "true",
    "data.volume.enabled": "true",
    "data.volume.claimName": "roman-products",
}


def _dask_pods(gateway, username, tier="research", request=None):
    """(scheduler, worker) pods the real controller makes for one cluster of ``username``
    (default options unless ``request`` says otherwise)."""
    from dask_gateway_server.backends.kubernetes.backend import KubeClusterConfig

    user = SimpleNamespace(name=username, groups=[f"tier-{tier}"])
    options, config = _run(gateway.backend.process_cluster_options(user, request or {}))
    obj = gateway.backend.make_cluster_object(user.name, options, config)
    spec = obj["spec"]["config"]
    cfg = KubeClusterConfig(
        **{k: v for k, v in spec.items() if k in KubeClusterConfig.class_trait_names()}
    )
    return [
        gateway.controller.make_pod(spec["namespace"], obj["metadata"]["name"], cfg, is_worker=w)
        for w in (False, True)
    ]


@pytest.mark.parametrize("gateway", [("cloud-production", SUPPLY)], indirect=True)
def test_dask_pods_pull_and_mount_like_notebooks(chart, gateway):
    """Supply: Dask pods from the registry with the pull secret; data: the read-only data
    volume mounted into schedulers and workers as into notebooks (items 4, 6)."""
    for pod in _dask_pods(gateway, "astro"):
        assert not chart.supply_problems(
            "dask pod", pod["spec"], "registry.example.org/roman", ["rp-image-pull"]
        )
        vols = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert vols["roman-data"]["persistentVolumeClaim"] == {
            "claimName": "roman-products",
            "readOnly": True,
        }
        mounts = {m["name"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
        assert (
            mounts["roman-data"]["mountPath"] == "/data/roman" and mounts["roman-data"]["readOnly"]
        )
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["ROMAN_DATA_URL"] == "/data/roman"


@pytest.mark.parametrize("gateway", [("cloud-production", SUPPLY)], indirect=True)
def test_dask_pods_run_the_clusters_environment(chart, gateway):
    """Issue 18: a cluster in the previous environment gets that environment's image (from the
    mirror) for its scheduler and workers, told its name and CRDS context as the server is; the
    default cluster runs the default environment's (the singleuser image)."""
    policy = gateway.policy
    for chosen in ("2026.2", None):
        env = policy.environment(chosen)
        request = {"environment": chosen} if chosen else {}
        for pod in _dask_pods(gateway, "astro", request=request):
            ct = pod["spec"]["containers"][0]
            assert ct["image"] == env.image, (chosen, ct["image"])
            values = {e["name"]: e.get("value") for e in ct["env"]}
            assert values["ROMAN_ENVIRONMENT"] == env.name
            assert values["CRDS_CONTEXT"] == env.versions.crds_context
            assert not chart.supply_problems(
                "dask pod", pod["spec"], "registry.example.org/roman", ["rp-image-pull"]
            )
    assert policy.environment("2026.2").image == (
        "registry.example.org/roman/roman-platform/notebook:2026.2"
    )
    assert policy.environment().image == policy.images.default
    user = SimpleNamespace(name="astro", groups=["tier-research"])
    with pytest.raises(Exception, match="'2099.1' is not a valid option for environment"):
        _run(gateway.backend.process_cluster_options(user, {"environment": "2099.1"}))


STORES = {
    "data.userStore.userPrefix": "s3://roman-users/users/",
    "data.userStore.teamPrefix": "s3://roman-users/teams/",
}


@pytest.mark.parametrize("gateway", [("kind", STORES)], indirect=True)
def test_dask_pods_get_their_owners_writable_prefix(chart, gateway):
    """Item 12: alice's scheduler and workers write where her notebook writes (her own prefix,
    the teams' base), never the unexpanded template or another user's prefix."""
    seen = {}
    for name in ("alice", "bob"):
        for is_worker, pod in enumerate(_dask_pods(gateway, name)):
            pairs = [(e["name"], e.get("value")) for e in pod["spec"]["containers"][0]["env"]]
            names = [k for k, _ in pairs]
            assert names.count("ROMAN_USER_STORE_URL") == 1, (
                names
            )  # one value, no shadowing duplicate
            env = dict(pairs)
            seen[name, is_worker] = env["ROMAN_USER_STORE_URL"]
            assert env["ROMAN_TEAM_STORE_URL"] == "s3://roman-users/teams/"
    assert seen["alice", 0] == seen["alice", 1] == "s3://roman-users/users/alice/"
    assert seen["bob", 1] == "s3://roman-users/users/bob/"


@pytest.mark.parametrize("config", ["kind", "cloud-production"])
def test_gateway_config_files_are_one_call(chart, config):
    """No Python logic in the chart: each gateway config file is one import and one call of
    hub_config.gateway.kubernetes; the values are data beside it (a JSON object)."""
    import ast
    import json

    objs = chart.render(config)
    for name, call, data in (
        ("rp-gateway-api", "configure_kubernetes", "gateway.json"),
        ("rp-gateway-controller", "configure_controller", "controller.json"),
    ):
        cm = chart.find(objs, "ConfigMap", name)["data"]
        body = ast.parse(cm["dask_gateway_config.py"]).body
        assert [type(n) for n in body] == [ast.ImportFrom, ast.Expr], name
        assert body[0].module == "hub_config.gateway.kubernetes", name
        assert isinstance(body[1].value, ast.Call) and body[1].value.func.id == call, name
        assert isinstance(json.loads(cm[data]), dict), name


def test_gateway_settings_refuse_bad_data(chart, tmp_path):
    """A missing settings file or a wrong field is a clear error naming it, not a half config."""
    import json

    from pydantic import ValidationError
    from traitlets.config import Config

    from hub_config.gateway.kubernetes import configure_kubernetes

    cm = chart.find(chart.render("kind"), "ConfigMap", "rp-gateway-api")["data"]
    config_file = tmp_path / "dask_gateway_config.py"
    with pytest.raises(FileNotFoundError, match="gateway.json"):
        configure_kubernetes(Config(), config_file)
    settings = json.loads(cm["gateway.json"])
    settings["scheduler"]["cores"] = "lots"
    settings["unknown_value"] = 1
    (tmp_path / "gateway.json").write_text(json.dumps(settings))
    with pytest.raises(ValidationError, match=r"scheduler\.cores[\s\S]*unknown_value"):
        configure_kubernetes(Config(), config_file)
