"""What a new cluster is configured with: the worker counts the policy documents, and the
user's data environment (per user, never another user's, never the hub token).

Runs dask-gateway's own option processing (``Backend.process_cluster_options`` and its
``ClusterConfig`` validation) on the real UnsafeLocalBackend class; no processes are started."""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from dask_gateway_server.backends.local import UnsafeLocalBackend
from traitlets.config import Config

from hub_config.gateway import TIER_ENV, configure_gateway, data_environment
from hub_config.policy import GIB, load_policy

SERVER_ENV = {  # what the spawner gives every server (the env contract), plus what must not pass
    "ROMAN_DATA_URL": "s3://roman-survey/",
    "ROMAN_DATA_S3_ENDPOINT": "http://127.0.0.1:8333",
    "AWS_ACCESS_KEY_ID": "key-{username}",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "ROMAN_USER_STORE_URL": "s3://roman-users/users/{username}/",
    "ROMAN_TEAM_STORE_URL": "s3://roman-users/teams/",
    "CRDS_PATH": "/crds",
    "STPSF_PATH": "/stpsf",
    "JUPYTERHUB_API_TOKEN": "the-platform-s",
    "DASK_GATEWAY__ADDRESS": "http://127.0.0.1:8010",
}


def _process(user, request, scheduler_cores=1, scheduler_memory="2 G", hook=None):
    c = Config()
    c.ClusterConfig.environment = data_environment(SERVER_ENV)
    c.ClusterConfig.scheduler_cores = scheduler_cores
    c.ClusterConfig.scheduler_memory = scheduler_memory
    cls = configure_gateway(
        c, "dask_gateway_server.backends.local.UnsafeLocalBackend", data_env_hook=hook
    )
    c.DaskGateway.backend_class = cls
    backend = cls(config=c)
    assert isinstance(backend, UnsafeLocalBackend)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, backend.process_cluster_options(user, request)).result()[1]


@pytest.mark.parametrize(
    ("tier", "cores", "expected"),
    [
        ("entry", 1, 4),
        ("research", 1, 16),
        ("research", 2, 16),
        ("team", 4, 100),
        ("consortium", 8, 500),
    ],
)
def test_scale_limit_equals_documented_worker_count(tier, cores, expected):
    """The policy's per-cluster numbers are for workers; the scheduler comes on top."""
    lim = load_policy().gateway_limits(tier)
    user = SimpleNamespace(name="astro", groups=[f"tier-{tier}"])
    for sched_cores in (1, 2):
        cfg = _process(
            user, {"worker_cores": cores, "worker_memory": 1}, scheduler_cores=sched_cores
        )
        assert (
            cfg.cluster_max_workers
            == expected
            == min(lim.max_workers, int(lim.max_cores_per_cluster // cores))
        )
        assert cfg.cluster_max_cores == lim.max_cores_per_cluster + sched_cores
    # Memory bounds the count the same way: Research 8 GiB workers, 128 GiB per cluster -> 16.
    cfg = _process(SimpleNamespace(name="astro", groups=["tier-research"]), {"worker_memory": 8})
    assert cfg.cluster_max_workers == 16 and cfg.cluster_max_memory == 128 * GIB + 2 * GIB


def test_workers_get_the_users_data_environment():
    ann = _process(SimpleNamespace(name="ann", groups=["tier-research"]), {}).environment
    bob = _process(SimpleNamespace(name="Bob.Smith", groups=[]), {}).environment
    assert ann[TIER_ENV] == "research" and bob[TIER_ENV] == "entry"
    for key in (
        "ROMAN_DATA_URL",
        "ROMAN_DATA_S3_ENDPOINT",
        "AWS_SECRET_ACCESS_KEY",
        "ROMAN_TEAM_STORE_URL",
        "CRDS_PATH",
        "STPSF_PATH",
    ):
        assert ann[key] == bob[key] == SERVER_ENV[key]
    # Per-user parts are expanded for the cluster's owner, as KubeSpawner expands them.
    assert ann["ROMAN_USER_STORE_URL"] == "s3://roman-users/users/ann/"
    assert ann["AWS_ACCESS_KEY_ID"] == "key-ann"
    assert "ann" not in bob["ROMAN_USER_STORE_URL"] and bob["ROMAN_USER_STORE_URL"].startswith(
        "s3://roman-users/users/bob"
    )
    # Never the notebook's hub token or its gateway settings.
    assert not {"JUPYTERHUB_API_TOKEN", "DASK_GATEWAY__ADDRESS"} & set(ann)


def test_kubernetes_pods_run_as_the_users_service_account():
    """On Kubernetes the chart names a per-user service account by template; each cluster's pods
    get their owner's (no Kubernetes API server here: the config object is what KubeBackend
    writes into the DaskCluster, checked against the pods in tests/helm)."""
    from dask_gateway_server.backends.kubernetes.backend import KubeClusterConfig

    from hub_config.gateway import user_pod_identity

    for user, expected in (("ann", "ann-data"), ("Bob.Smith", None)):
        cfg = KubeClusterConfig(
            worker_extra_pod_config={
                "serviceAccountName": "{username}-data",
                "automountServiceAccountToken": True,
            },
            scheduler_extra_pod_config={"serviceAccountName": "{username}-data"},
        )
        user_pod_identity(cfg, user)
        sa = cfg.worker_extra_pod_config["serviceAccountName"]
        assert sa == cfg.scheduler_extra_pod_config["serviceAccountName"]
        assert "{" not in sa and (expected is None or sa == expected)
        assert cfg.worker_extra_pod_config["automountServiceAccountToken"] is True
    assert sa != "ann-data"
    plain = KubeClusterConfig(worker_extra_pod_config={"automountServiceAccountToken": False})
    user_pod_identity(plain, "ann")
    assert plain.worker_extra_pod_config == {"automountServiceAccountToken": False}


def test_per_user_credentials_from_the_spawners_hook():
    """Per-user keys the spawner looks up (not a template) come from the same hook."""
    keys = {"ann": ("ann-key", "ann-secret"), "bob": ("bob-key", "bob-secret")}

    def hook(username, env):
        key, secret = keys[username]
        return {**env, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}

    for name, (key, secret) in keys.items():
        env = _process(SimpleNamespace(name=name, groups=[]), {}, hook=hook).environment
        assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (key, secret)
        assert env[TIER_ENV] == "entry" and env["ROMAN_DATA_URL"] == SERVER_ENV["ROMAN_DATA_URL"]


def test_cluster_environment_default_forged_and_unavailable(tmp_path, monkeypatch):
    """Issue 18: a cluster runs a policy environment (default: the default one); a name the
    policy does not offer is refused by the options, and on a local backend (the gateway's own
    Python environment) so is an environment whose pinned versions are not installed."""
    from dask_gateway_server.backends.base import PublicException

    from hub_config.environments import LOCAL_ENVIRONMENTS_VAR
    from hub_config.gateway import ENVIRONMENT_ENV

    monkeypatch.setenv(LOCAL_ENVIRONMENTS_VAR, str(tmp_path / "no-overlays"))
    user = SimpleNamespace(name="ann", groups=["tier-research"])
    assert _process(user, {}).environment[ENVIRONMENT_ENV] == "2026.3"
    assert _process(user, {"environment": "2026.3"}).environment[ENVIRONMENT_ENV] == "2026.3"
    with pytest.raises(PublicException, match="'2099.1' is not a valid option for environment"):
        _process(user, {"environment": "2099.1"})
    with pytest.raises(
        PublicException, match="Cannot start a cluster in environment 2026.2: .* romancal 1.0.3"
    ):
        _process(user, {"environment": "2026.2"})


def test_local_cluster_of_the_previous_environment_runs_its_overlay():
    from tests.support.environments import previous_overlay

    previous_overlay("2026.2")  # fails, naming make setup, where it is missing
    c = Config()
    c.ClusterConfig.scheduler_cmd = [f"{sys.prefix}/bin/dask", "scheduler"]
    c.ClusterConfig.worker_cmd = [f"{sys.prefix}/bin/dask", "worker"]
    cls = configure_gateway(c, "dask_gateway_server.backends.local.UnsafeLocalBackend")
    backend = cls(config=c)
    user = SimpleNamespace(name="ann", groups=["tier-research"])
    with ThreadPoolExecutor(1) as pool:
        cfg = pool.submit(
            asyncio.run, backend.process_cluster_options(user, {"environment": "2026.2"})
        ).result()[1]
    prefix = cfg.scheduler_cmd[0].rsplit("/bin/", 1)[0]
    assert prefix != sys.prefix and cfg.scheduler_cmd[1:] == ["scheduler"]
    assert cfg.worker_cmd == [f"{prefix}/bin/dask", "worker"]
    assert cfg.environment["PATH"].startswith(f"{prefix}/bin:")
    assert cfg.environment["ROMAN_ENVIRONMENT"] == "2026.2"


def test_kubernetes_cluster_config_gets_the_environments_image():
    from dask_gateway_server.backends.kubernetes.backend import KubeClusterConfig

    from hub_config.gateway import apply_software_environment

    policy = load_policy()
    cfg = KubeClusterConfig(image="roman-platform/notebook:2026.3")
    cfg.environment = {"ROMAN_ENVIRONMENT": "2026.2", "ROMAN_TIER": "entry"}
    apply_software_environment(policy, cfg)
    assert cfg.image == policy.environment("2026.2").image == "roman-platform/notebook:2026.2"
    assert cfg.environment["CRDS_CONTEXT"] == "roman_0046.pmap"
