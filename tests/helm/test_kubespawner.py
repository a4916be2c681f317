"""KubeSpawner's own manifests, built with the chart's hub config, checked against the policy.

There is no Kubernetes API server here, so the spawner is built with a MOCKED Kubernetes client
(``kubespawner.spawner.load_config`` and ``shared_client`` replaced by a ``MagicMock`` that is
never called) and never started; ``get_pod_manifest``, ``get_pvc_manifest`` and the
``modify_pod_hook`` are the real code whose output ``start()`` would send to the API server. The hub config is
the real hub_config/jupyterhub_config.py, loaded in chart mode from what ``helm template``
rendered (the values ConfigMap, the policy, the Secret's tokens).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
from types import SimpleNamespace

import kubernetes_validate
import pytest
import yaml
from traitlets.config.loader import PyFileConfigLoader

from hub_config.policy import parse_policy


def _run(coro):
    """``asyncio.run`` in a thread of its own: a Playwright browser opened by an earlier test in
    the same session keeps an event loop running in this thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


GIB = 1024**3


def _materialize(chart, config: str, tmp_path, sets=None) -> dict[str, str]:
    """Files and environment the chart's hub Deployment gives the hub, from the rendered objects."""
    objs = chart.render(config, dict(sets or ()))
    cm = chart.find(objs, "ConfigMap", "rp-hub")["data"]
    secret = chart.find(objs, "Secret", "rp-hub")["stringData"]
    (tmp_path / "config").mkdir()
    (tmp_path / "secret").mkdir()
    for key, text in cm.items():
        (tmp_path / "config" / key).write_text(text)
    for key, text in secret.items():
        (tmp_path / "secret" / key).write_text(text)
    hub = chart.find(objs, "Deployment", "rp-hub")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in hub["env"] if "value" in e}
    env = {k: v.replace("/etc/roman-platform", str(tmp_path)) for k, v in env.items()}
    env.update(
        {
            "POD_IP": "100.64.1.3",
            "POD_NAMESPACE": chart.NAMESPACE,
            "CONFIGPROXY_AUTH_TOKEN": secret["proxy-token"],
            "ROMAN_OIDC_CLIENT_SECRET": "from-the-oidc-secret",
            # The hub's pre-spawn quota check (issue 5) runs for real, on a fresh SQLite database.
            "ROMAN_QUOTA_DB_URL": f"sqlite:///{tmp_path}/quota.sqlite",
        }
    )
    return env


@pytest.fixture
def hub_config(chart, tmp_path, request):
    """(traitlets Config of the hub, the effective policy, the values) for one chart config."""
    param = getattr(request, "param", "kind")
    config, sets = param if isinstance(param, tuple) else (param, None)
    env = _materialize(chart, config, tmp_path, sets)
    saved = dict(os.environ)
    os.environ.update(env)
    from hub_config import chart_values

    chart_values._load.cache_clear()
    try:
        loader = PyFileConfigLoader("jupyterhub_config.py", path=str(chart.REPO / "hub_config"))
        cfg = loader.load_config()
        policy = parse_policy(yaml.safe_load((tmp_path / "config" / "policy.yaml").read_text()))
        values = yaml.safe_load((tmp_path / "config" / "values.yaml").read_text())
        yield cfg, policy, values
    finally:
        os.environ.clear()
        os.environ.update(saved)
        chart_values._load.cache_clear()


def _user(name: str, groups: list[str]):
    return SimpleNamespace(
        name=name,
        id=1,
        url=f"/user/{name}/",
        escaped_name=name,
        groups=[SimpleNamespace(name=g) for g in groups],
        spawners={},
    )


@pytest.fixture(autouse=True)
def mocked_kube_client(monkeypatch):
    """No API server: KubeSpawner gets a mock client; the test fails if anything calls it."""
    from unittest import mock

    import kubespawner.spawner

    client = mock.MagicMock(name="CoreV1Api (mock: no Kubernetes API server here)")
    monkeypatch.setattr(kubespawner.spawner, "load_config", lambda **kw: None)
    monkeypatch.setattr(kubespawner.spawner, "shared_client", lambda name: client)
    yield client
    assert not client.mock_calls, f"the spawner called the (absent) API server: {client.mock_calls}"


def _spawner(cfg, user):
    from hub_config.spawner import TierKubeSpawner

    # What JupyterHub derives from hub_connect_url (app.py: hub.url / hub.api_url).
    connect = cfg.JupyterHub.hub_connect_url
    hub = SimpleNamespace(
        public_host="", url=f"{connect}/hub/", base_url="/hub/", api_url=f"{connect}/hub/api"
    )
    return TierKubeSpawner(config=cfg, user=user, hub=hub, _mock=True)


def _build(cfg, user, options):
    """(spawner, pod dict, pvc dict) exactly as start() would send them."""
    from kubernetes_asyncio.client import ApiClient

    spawner = _spawner(cfg, user)

    async def go():
        await spawner.apply_tier_options(options)
        pod = await spawner.get_pod_manifest()
        if spawner.modify_pod_hook:
            pod = spawner.modify_pod_hook(spawner, pod)
        async with ApiClient() as api:  # serialization only; it never connects
            return api.sanitize_for_serialization(pod), api.sanitize_for_serialization(
                spawner.get_pvc_manifest()
            )

    pod, pvc = _run(go())
    return spawner, pod, pvc


def test_config_is_chart_mode(hub_config):
    cfg, _policy, values = hub_config
    assert cfg.JupyterHub.spawner_class == "hub_config.spawner.TierKubeSpawner"
    assert cfg.JupyterHub.authenticator_class == "hub_config.auth.RomanOIDCAuthenticator"
    assert cfg.ConfigurableHTTPProxy.should_start is False
    assert cfg.JupyterHub.cleanup_servers is False
    assert cfg.RomanOIDCAuthenticator.client_secret == "from-the-oidc-secret"
    assert (
        cfg.RomanOIDCAuthenticator.oauth_callback_url
        == "http://kind-node.invalid:30080/hub/oauth_callback"
    )
    services = {s["name"]: s for s in cfg.JupyterHub.services}
    assert services["dask-gateway"]["url"] == "http://rp-traefik.roman.svc:80"
    assert services["quota"]["url"] == "http://100.64.1.3:8090"  # SQLite: inside the hub pod
    # ... where it reads Dask usage from the gateway's DaskClusters, which the hub's Role allows.
    from hub_config.quota.service import build_parser, settings_from_args

    quota_args = services["quota"]["command"][3:]
    assert services["quota"]["command"][1:3] == ["-m", "hub_config.quota.service"]
    quota = settings_from_args(build_parser().parse_args(quota_args))
    assert quota.gateway_kube_namespace == values["_chart"]["userNamespace"]
    assert quota.gateway_kube_instance == "rp-gateway"
    assert not quota.gateway_db_url
    assert "culler" in services and any(r["name"] == "culler" for r in cfg.JupyterHub.load_roles)
    assert cfg.KubeSpawner.namespace == values["_chart"]["userNamespace"]
    # The configured values are valid traits of the real classes (traitlets validates on init).
    from jupyterhub.app import JupyterHub

    from hub_config.auth import RomanOIDCAuthenticator

    hub = JupyterHub(config=cfg)
    assert hub.public_url.rstrip("/") == "http://kind-node.invalid:30080"
    assert hub.hub_connect_url == "http://rp-hub.roman.svc:8081"
    auth = RomanOIDCAuthenticator(config=cfg)
    assert (
        auth.oidc_issuer == "http://kind-node.invalid:30081" and auth.client_id == "roman-platform"
    )


TIER_USERS = {
    "entry": ("erin", ["tier-entry"]),
    "research": ("rosa", ["tier-research"]),
    "team": ("tomas", ["tier-team", "team-galaxies"]),
    "consortium": ("chen", ["tier-consortium"]),
}


@pytest.mark.parametrize("tier", list(TIER_USERS))
def test_each_tier_gets_its_profiles_pod(chart, hub_config, tier):
    cfg, policy, values = hub_config
    username, groups = TIER_USERS[tier]
    profiles = policy.profiles_for(tier)
    for profile_name, profile in profiles.items():
        spawner, pod, pvc = _build(cfg, _user(username, groups), {"profile": profile_name})
        who = f"pod of {username} ({tier}/{profile_name})"
        kubernetes_validate.validate(pod, chart.K8S_VERSION, strict=True)
        kubernetes_validate.validate(pvc, chart.K8S_VERSION, strict=True)
        ct = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")
        res = ct["resources"]
        assert float(res["limits"]["cpu"]) == profile.cpu_limit, who
        assert float(res["requests"]["cpu"]) == profile.cpu_guarantee, who
        assert int(res["limits"]["memory"]) == profile.mem_limit_bytes, who
        assert int(res["requests"]["memory"]) == profile.mem_guarantee_bytes, who
        if profile.gpus:
            assert res["limits"]["nvidia.com/gpu"] == str(profile.gpus), who
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
                "spec"
            ]["tolerations"]
        else:
            assert "nvidia.com/gpu" not in res.get("limits", {}), who
        for k, v in profile.node_selector.items():
            assert pod["spec"]["nodeSelector"][k] == v, who
        assert ct["image"] == policy.image_for(profile)
        assert chart.image_problem(ct["image"]) is None
        # Home volume of the tier allocation's size (issue 16 item 8: not the first profile's)
        # from the chart's storage class; scratch emptyDir.
        home_gb = policy.tiers[tier].base_allocation.home_gb
        assert pvc["spec"]["resources"]["requests"]["storage"] == f"{home_gb:g}G", who
        assert (
            pvc["spec"]["storageClassName"] == values["singleuser"]["storage"]["storageClassName"]
        )
        vols = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert vols["home"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
        assert vols["scratch"]["emptyDir"]["sizeLimit"] == f"{profile.scratch_gib:g}Gi"
        # Security: non-root, no escalation, no capabilities, no API token (notebooks need a
        # writable root filesystem, so that one rule does not apply to them).
        assert not chart.pod_problems(who, pod["spec"], writable_root_ok=True)
        assert ct["securityContext"]["runAsUser"] == values["singleuser"]["uid"]
        assert pod["spec"]["securityContext"]["fsGroup"] == values["singleuser"]["fsGid"]
        assert pod["spec"]["automountServiceAccountToken"] is False
        env = {e["name"]: e.get("value") for e in ct["env"]}
        assert env["ROMAN_TIER"] == tier and env["ROMAN_PROFILE"] == profile_name
        assert (
            env["DASK_GATEWAY__ADDRESS"] == "http://rp-traefik.roman.svc:80/services/dask-gateway"
        )
        assert env["DASK_GATEWAY__PROXY_ADDRESS"] == "gateway://rp-traefik.roman.svc:8786"
        assert env["DASK_GATEWAY__AUTH__TYPE"] == "jupyterhub"
        assert env["ROMAN_QUOTA_URL"] == "http://rp-proxy-public.roman.svc:80/services/quota/"
        assert env["ROMAN_DATA_URL"] == "/data/roman"
        # Team volumes: mounted read-write for members of the team only, with the team's gid.
        mounts = {m["name"]: m for m in ct["volumeMounts"]}
        if "team-galaxies" in groups:
            assert mounts["team-galaxies"]["mountPath"] == "/teams/galaxies"
            assert not mounts["team-galaxies"].get("readOnly")
            assert vols["team-galaxies"]["persistentVolumeClaim"]["claimName"] == "rp-team-galaxies"
            assert 20001 in pod["spec"]["securityContext"]["supplementalGroups"]
        else:
            assert "team-galaxies" not in vols and "team-galaxies" not in mounts
        # The chart's NetworkPolicies select the user's pod.
        assert not chart.netpol_problems(
            chart.render("kind"), [(who, chart.NAMESPACE, pod["metadata"]["labels"])]
        )


def test_a_tier_cannot_start_another_tiers_profile(hub_config):
    cfg, _policy, _values = hub_config
    spawner = _spawner(cfg, _user("erin", ["tier-entry"]))
    with pytest.raises(Exception, match="not available to the Entry tier"):
        _run(spawner.apply_tier_options({"profile": "gpu"}))


@pytest.mark.parametrize("hub_config", ["cloud-production"], indirect=True)
def test_production_spawner_settings(chart, hub_config):
    cfg, policy, _values = hub_config
    spawner, pod, pvc = _build(
        cfg, _user("rosa", ["tier-research", "team-hlwas"]), {"profile": "medium"}
    )
    assert pod["metadata"]["namespace"] if "namespace" in pod["metadata"] else True
    assert spawner.namespace == "roman-users"
    assert pvc["spec"]["storageClassName"] == "gp3"
    assert pod["spec"]["priorityClassName"] == "rp-user"
    assert pod["spec"]["serviceAccountName"] == "rp-singleuser"
    services = {s["name"]: s for s in cfg.JupyterHub.services}
    assert (
        services["quota"]["url"] == "http://rp-quota.roman.svc:8090"
        and "command" not in services["quota"]
    )
    assert 20001 in pod["spec"]["securityContext"]["supplementalGroups"]
    objs = chart.render("cloud-production")
    assert not chart.netpol_problems(objs, [("user pod", "roman-users", pod["metadata"]["labels"])])


DATA_SETS = {
    "data.volume.enabled": "true",
    "data.volume.claimName": "roman-products",
    "data.s3.existingSecret": "roman-s3-keys",
}


@pytest.mark.parametrize("hub_config", [("kind", tuple(DATA_SETS.items()))], indirect=True)
def test_data_mount_and_s3_keys(chart, hub_config):
    """The read-only data volume and S3 keys from a Secret reach the notebook (and Dask pods)."""
    cfg, _policy, _values = hub_config
    _spawner_, pod, _pvc = _build(cfg, _user("rosa", ["tier-research"]), {"profile": "small"})
    ct = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["name"]: m for m in ct["volumeMounts"]}
    assert vols["roman-data"]["persistentVolumeClaim"] == {
        "claimName": "roman-products",
        "readOnly": True,
    }
    assert mounts["roman-data"] == {
        "name": "roman-data",
        "mountPath": "/data/roman",
        "readOnly": True,
    }
    assert {"secretRef": {"name": "roman-s3-keys"}} in ct["envFrom"]
    env = {e["name"]: e.get("value") for e in ct["env"]}
    assert env["ROMAN_DATA_URL"] == "/data/roman"
    gateway_cfg = chart.find(chart.render("kind", DATA_SETS), "ConfigMap", "rp-gateway-api")["data"]
    assert json.loads(gateway_cfg["gateway.json"])["s3_secret"] == "roman-s3-keys"


# ---------------------------------------------------------------------------- issue 16: production
@pytest.mark.parametrize("hub_config", ["kind", "minikube", "cloud-production"], indirect=True)
def test_user_pod_urls_resolve_and_calls_are_allowed(chart, hub_config):
    """Names: every URL KubeSpawner puts in a user pod resolves to a Service and port in the
    namespace the name implies (with singleuser.namespace set, short names resolved nowhere).
    Permissions: every call the installed kubespawner makes is allowed by the hub's RBAC."""
    cfg, _policy, values = hub_config
    user_ns = values["_chart"]["userNamespace"]
    objs = _objs_for(chart, values)
    spawner, pod, _pvc = _build(cfg, _user("rosa", ["tier-research"]), {"profile": "small"})
    assert spawner.namespace == user_ns
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["JUPYTERHUB_API_URL"].startswith("http://rp-hub.roman.svc:8081/")
    problems = chart.url_problems("user pod", env, user_ns, objs)
    assert not problems, "\n".join(problems)
    # Browser-facing links are the public URL (item 9).
    public = values["hub"]["publicUrl"] or f"https://{values['ingress']['hosts'][0]}"
    assert env["DASK_GATEWAY__PUBLIC_ADDRESS"] == f"{public}/services/dask-gateway"
    assert env["ROMAN_QUOTA_PUBLIC_URL"] == f"{public}/services/quota/"
    # Permissions: the calls are conditional on features this config leaves off.
    assert (
        not spawner.internal_ssl
        and not spawner.services_enabled
        and not spawner.enable_user_namespaces
    )
    calls = chart.kubespawner_calls(cfg)
    assert ("create", "", "pods", "user") in calls and ("watch", "", "events", "user") in calls
    denied = [
        c
        for c in sorted(calls)
        if not chart.rbac_allows(objs, chart.NAMESPACE, "rp-hub", c[0], c[1], c[2], user_ns)
    ]
    assert not denied, f"the hub may not {denied}"


def _objs_for(chart, values):
    """The rendered objects of the example whose values these are."""
    for name in chart.CONFIGS:
        objs = chart.render(name)
        cm = yaml.safe_load(chart.find(objs, "ConfigMap", "rp-hub")["data"]["values.yaml"])
        if cm == values:
            return objs
    raise AssertionError("values of no example")


SUPPLY = (
    ("global.registry", "registry.example.org/roman"),
    ("global.imagePullSecret.create", "true"),
    ("global.imagePullSecret.registry", "registry.example.org"),
)


@pytest.mark.parametrize("hub_config", [("cloud-production", SUPPLY)], indirect=True)
def test_user_pods_pull_from_the_registry(chart, hub_config):
    cfg, _policy, _values = hub_config
    for profile in ("small", "gpu"):
        groups = ["tier-consortium"]
        _spawner_, pod, _pvc = _build(cfg, _user("rosa", groups), {"profile": profile})
        problems = chart.supply_problems(
            f"user pod {profile}", pod["spec"], "registry.example.org/roman", ["rp-image-pull"]
        )
        assert not problems, problems


@pytest.mark.parametrize("hub_config", [("cloud-production", SUPPLY)], indirect=True)
def test_previous_environment_pod_from_the_chart(chart, hub_config):
    """Issue 18: the hub as the chart configures it starts the previous environment's image
    (from the mirror, like every image) and tells the server which one it is; the default
    environment runs the singleuser image."""
    cfg, policy, values = hub_config
    su = values["singleuser"]["image"]
    for chosen, image in (
        ("2026.2", "registry.example.org/roman/roman-platform/notebook:2026.2"),
        ("2026.3", f"registry.example.org/roman/{su['name']}:{su['tag']}"),
    ):
        spawner, pod, _pvc = _build(
            cfg, _user("rosa", ["tier-research"]), {"profile": "small", "environment": chosen}
        )
        kubernetes_validate.validate(pod, chart.K8S_VERSION, strict=True)
        ct = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")
        assert ct["image"] == image == policy.environment(chosen).image
        env = {e["name"]: e.get("value") for e in ct["env"]}
        assert env["ROMAN_ENVIRONMENT"] == chosen
        assert env["CRDS_CONTEXT"] == policy.environment(chosen).versions.crds_context
        assert not chart.supply_problems(
            "user pod", pod["spec"], "registry.example.org/roman", ["rp-image-pull"]
        )
    from hub_config.spawner import SpawnRefused

    with pytest.raises(SpawnRefused, match="not offered"):
        _build(cfg, _user("rosa", ["tier-research"]), {"profile": "small", "environment": "x"})


@pytest.mark.parametrize("hub_config", [("kind", (("hub.db.upgrade", "true"),))], indirect=True)
def test_hub_db_upgrade_setting(hub_config):
    cfg, _policy, _values = hub_config
    assert cfg.JupyterHub.upgrade_db is True


def test_named_servers_do_not_share_a_readwriteonce_home(hub_config):
    """Item 8: two servers of one user on two nodes cannot attach one RWO claim (Multi-Attach);
    each server gets its own claim, and its size is the tier allocation's, whatever the profile."""
    from hub_config.spawner import TierKubeSpawner

    cfg, policy, _values = hub_config
    user = _user("rosa", ["tier-research"])
    claims = {}
    for server, profile in (("", "small"), ("big", "medium"), ("other", "small")):
        connect = cfg.JupyterHub.hub_connect_url
        hub = SimpleNamespace(
            public_host="", url=f"{connect}/hub/", base_url="/hub/", api_url=f"{connect}/hub/api"
        )
        spawner = TierKubeSpawner(
            config=cfg,
            user=user,
            hub=hub,
            _mock=True,
            orm_spawner=SimpleNamespace(name=server, server=None),
        )
        _run(spawner.apply_tier_options({"profile": profile}))
        pvc = spawner.get_pvc_manifest()
        claims[server] = (
            pvc.metadata.name,
            pvc.spec.resources.requests["storage"],
            pvc.spec.access_modes,
        )
    assert len({name for name, _, _ in claims.values()}) == 3, claims
    home = f"{policy.tiers['research'].base_allocation.home_gb:g}G"
    assert {size for _, size, _ in claims.values()} == {home}
    assert all(modes == ["ReadWriteOnce"] for _, _, modes in claims.values())


@pytest.mark.parametrize(
    "hub_config", [("kind", (("singleuser.storage.accessMode", "ReadWriteMany"),))], indirect=True
)
def test_readwritemany_home_is_shared_by_named_servers(hub_config):
    from hub_config.spawner import TierKubeSpawner

    cfg, _policy, _values = hub_config
    user = _user("rosa", ["tier-research"])
    names = set()
    for server in ("", "big"):
        connect = cfg.JupyterHub.hub_connect_url
        hub = SimpleNamespace(
            public_host="", url=f"{connect}/hub/", base_url="/hub/", api_url=f"{connect}/hub/api"
        )
        spawner = TierKubeSpawner(
            config=cfg,
            user=user,
            hub=hub,
            _mock=True,
            orm_spawner=SimpleNamespace(name=server, server=None),
        )
        _run(spawner.apply_tier_options({"profile": "small"}))
        pvc = spawner.get_pvc_manifest()
        assert pvc.spec.access_modes == ["ReadWriteMany"]
        names.add(pvc.metadata.name)
    assert names == {"claim-rosa"}


@pytest.mark.parametrize("hub_config", ["cloud-production"], indirect=True)
def test_users_write_under_their_own_prefix(hub_config):
    """Item 12: the survey store stays read-only; each user gets a writable prefix of their own
    and the base of team spaces (the shared contract's ROMAN_USER_STORE_URL/ROMAN_TEAM_STORE_URL)."""
    cfg, _policy, values = hub_config
    envs = {}
    for name in ("rosa", "erin"):
        _sp, pod, _pvc = _build(cfg, _user(name, ["tier-research"]), {"profile": "small"})
        envs[name] = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert envs["rosa"]["ROMAN_USER_STORE_URL"] == "s3://roman-science-platform-users/users/rosa/"
    assert envs["erin"]["ROMAN_USER_STORE_URL"] == "s3://roman-science-platform-users/users/erin/"
    assert envs["rosa"]["ROMAN_TEAM_STORE_URL"] == "s3://roman-science-platform-users/teams/"
    survey = envs["rosa"]["ROMAN_DATA_URL"]
    assert not envs["rosa"]["ROMAN_USER_STORE_URL"].startswith(survey.rstrip("/") + "/")


@pytest.mark.parametrize("hub_config", ["cloud-production"], indirect=True)
def test_crds_and_stpsf_in_production(chart, hub_config, tmp_path):
    """Item 5: a writable per-user CRDS cache linked to the shared preloaded cache (RRN's
    symlink-crds), pinned STPSF data, in notebooks; Dask pods read the shared cache."""
    import subprocess

    cfg, _policy, values = hub_config
    _sp, pod, _pvc = _build(cfg, _user("rosa", ["tier-research"]), {"profile": "small"})
    ct = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in ct["env"]}
    assert env["CRDS_PATH"] == "/home/jovyan/crds_cache" and env["CRDS_READONLY_CACHE"] == "0"
    assert env["CRDS_SERVER_URL"] == "https://roman-crds.stsci.edu"
    assert env["STPSF_PATH"] == "/data/references/stpsf-data"
    mounts = {m["name"]: m for m in ct["volumeMounts"]}
    assert mounts["references"] == {
        "name": "references",
        "mountPath": "/data/references",
        "readOnly": True,
    }
    assert mounts["home"]["mountPath"] == "/home/jovyan"  # the cache is in the writable home
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert vols["references"]["persistentVolumeClaim"] == {
        "claimName": "rp-references",
        "readOnly": True,
    }
    objs = chart.render("cloud-production")
    assert chart.find(objs, "PersistentVolumeClaim", "rp-references")["spec"]["accessModes"] == [
        "ReadWriteMany"
    ]
    job = chart.find(objs, "Job", "rp-references-preload")
    preload = job["spec"]["template"]["spec"]["containers"][0]
    assert "crds sync --contexts $CRDS_CONTEXTS" in preload["command"][-1]
    # Every environment's context is preloaded (issue 18), the chart's own first, once each.
    contexts = {e["name"]: e["value"] for e in preload["env"]}["CRDS_CONTEXTS"].split()
    assert contexts == ["roman_0048.pmap", "roman_0046.pmap"]
    # The postStart hook, run for real against a fake shared cache: links, writable, idempotent.
    shared = tmp_path / "data" / "references" / "crds"
    (shared / "references" / "roman" / "wfi").mkdir(parents=True)
    (shared / "references" / "roman" / "wfi" / "roman_wfi_dark_0001.asdf").write_text("dark")
    (shared / "mappings" / "roman").mkdir(parents=True)
    (shared / "mappings" / "roman" / "roman_0048.pmap").write_text("pmap")
    script = ct["lifecycle"]["postStart"]["exec"]["command"][2].replace(
        "/data/references", str(tmp_path / "data" / "references")
    )
    cache = tmp_path / "home" / "crds_cache"
    for _ in range(2):
        subprocess.run(
            ["sh", "-c", script],
            env={"CRDS_PATH": str(cache), "PATH": os.environ["PATH"]},
            check=True,
            timeout=30,
        )
    dark = cache / "references" / "roman" / "wfi" / "roman_wfi_dark_0001.asdf"
    assert dark.is_symlink() and dark.read_text() == "dark"
    (cache / "references" / "roman" / "wfi" / "roman_wfi_flat_0002.asdf").write_text(
        "new"
    )  # CRDS can add


@pytest.mark.parametrize("hub_config", ["cloud-production"], indirect=True)
def test_prometheus_may_read_hub_metrics_only(chart, hub_config, tmp_path):
    """Also-list: a 'prometheus' hub service whose token may read /hub/metrics and nothing else,
    reachable on the hub's port from the Prometheus namespace only (checked by nca)."""
    cfg, _policy, _values = hub_config
    services = {s["name"]: s for s in cfg.JupyterHub.services}
    objs = chart.render("cloud-production")
    token = chart.find(objs, "Secret", "rp-hub")["stringData"]["metrics-token"]
    assert services["prometheus"]["api_token"] == token and len(token) >= 32
    roles = {r["name"]: r for r in cfg.JupyterHub.load_roles}
    assert roles["prometheus"]["scopes"] == ["read:metrics"] and roles["prometheus"][
        "services"
    ] == ["prometheus"]
    scraper = {
        "apiVersion": "v1",
        "kind": "Pod",
        "spec": {"containers": [{"name": "p", "image": "p:1"}]},
        "metadata": {
            "name": "prometheus-0",
            "namespace": "monitoring",
            "labels": {"app": "prometheus"},
        },
    }
    other = {**scraper, "metadata": {**scraper["metadata"], "namespace": "elsewhere"}}
    lines = chart.connectivity(objs, [scraper, other], tmp_path)
    assert chart.nca_allows(lines, "monitoring/prometheus-0", "roman/rp-hub", 8081)
    assert not chart.nca_allows(lines, "elsewhere/prometheus-0", "roman/rp-hub", 8081)
