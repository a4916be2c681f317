"""TierKubeSpawner's pod for a tier profile (KubeSpawner's own manifest builder, no API server:
none can run here, so the pod is built and checked, not created)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from hub_config.policy import load_policy


def _user(groups: list[str]) -> SimpleNamespace:
    return SimpleNamespace(
        name="ann",
        id=7,
        url="/user/ann/",
        spawners={},
        groups=[SimpleNamespace(name=g) for g in groups],
    )


@pytest.fixture(autouse=True)
def _no_api_server(monkeypatch):
    """KubeSpawner loads a client configuration and a shared API client when constructed; with
    no Kubernetes API server here both are replaced (as in tests/helm), and the test fails if
    the spawner calls the mock. Patching the loader, not $KUBECONFIG, keeps this independent of
    when kubernetes_asyncio was first imported (it reads $KUBECONFIG at import)."""
    from unittest import mock

    import kubespawner.spawner

    client = mock.MagicMock(name="CoreV1Api (mock: no Kubernetes API server here)")
    monkeypatch.setattr(kubespawner.spawner, "load_config", lambda **kw: None)
    monkeypatch.setattr(kubespawner.spawner, "shared_client", lambda name: client)
    yield
    assert not client.mock_calls, f"the spawner called the (absent) API server: {client.mock_calls}"


def _spawner(groups: list[str]):
    from hub_config.spawner import TierKubeSpawner

    return TierKubeSpawner(_mock=True, user=_user(groups))


def _in_thread(coro):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def test_gpu_profile_pod_for_team_tier():
    policy = load_policy()
    gpu = policy.profiles["gpu"]

    async def build():
        sp = _spawner(["tier-team", "team-galaxies"])
        await sp.apply_tier_options({"profile": "gpu"})
        pod = await sp.get_pod_manifest()
        from kubernetes_asyncio.client import ApiClient

        async with ApiClient() as api:  # what would be sent to the API server
            return sp, pod, api.sanitize_for_serialization(pod)

    sp, pod, plain = _in_thread(build())
    c = pod.spec.containers[0]
    assert c.image == policy.images.default
    assert (
        c.resources.limits["nvidia.com/gpu"] == "1"
        and c.resources.requests["nvidia.com/gpu"] == "1"
    )
    assert int(c.resources.limits["memory"]) == gpu.mem_limit_bytes
    assert float(c.resources.limits["cpu"]) == gpu.cpu_limit
    assert float(c.resources.requests["cpu"]) == gpu.cpu_guarantee
    assert pod.spec.node_selector == gpu.node_selector
    assert any(t.key == "nvidia.com/gpu" and t.effect == "NoSchedule" for t in pod.spec.tolerations)
    scratch = [v for v in plain["spec"]["volumes"] if v["name"] == "scratch"][0]
    assert scratch["emptyDir"]["sizeLimit"] == f"{gpu.scratch_gib:g}Gi"
    mounts = plain["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "scratch", "mountPath": "/scratch"} in mounts
    # the home claim is the tier allocation's size (issue 16 item 8), not the profile's
    assert sp.storage_capacity == f"{policy.tiers['team'].base_allocation.home_gb:g}G"
    env = {e.name: e.value for e in c.env}
    assert env["ROMAN_TIER"] == "team" and env["ROMAN_PROFILE"] == "gpu"


def test_kube_spawner_refuses_other_tiers_profile():
    from hub_config.spawner import SpawnRefused

    async def attempt():
        sp = _spawner(["tier-research"])
        await sp.apply_tier_options({"profile": "gpu"})

    with pytest.raises(SpawnRefused, match="not available to the Research tier"):
        _in_thread(attempt())


@pytest.mark.parametrize("chosen", ["2026.2", None])
def test_pod_runs_the_chosen_environments_image(chosen):
    """Issue 18: on Kubernetes every environment has its own image; picking the previous one
    gives a pod of that image, told its name and CRDS context (what platform_lib reports)."""
    policy = load_policy()
    env = policy.environment(chosen)

    async def build():
        sp = _spawner(["tier-research"])
        options = {"profile": "medium", **({"environment": chosen} if chosen else {})}
        await sp.apply_tier_options(options)
        return sp, await sp.get_pod_manifest()

    sp, pod = _in_thread(build())
    c = pod.spec.containers[0]
    assert c.image == env.image
    assert (chosen is None) == (c.image == policy.images.default)
    envvars = {e.name: e.value for e in c.env}
    assert envvars["ROMAN_ENVIRONMENT"] == env.name
    assert envvars["CRDS_CONTEXT"] == env.versions.crds_context
    assert sp.user_options == {"profile": "medium", "environment": env.name}


def test_kube_spawner_refuses_a_forged_environment():
    from hub_config.spawner import SpawnRefused

    async def attempt(options):
        sp = _spawner(["tier-research"])
        await sp.apply_tier_options(options)

    with pytest.raises(SpawnRefused, match="Environment '2099.1' is not offered"):
        _in_thread(attempt({"profile": "small", "environment": "2099.1"}))
    # ...nor an image other than the chosen environment's.
    with pytest.raises(SpawnRefused, match="it runs 'roman-platform/notebook:2026.2'"):
        _in_thread(attempt({"profile": "small", "environment": "2026.2", "image": "evil/miner:1"}))
