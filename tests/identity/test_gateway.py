"""Dask-Gateway under the tier policy: the tier comes from the hub, limits hold server side,
and per-user totals cut scale/adapt requests to what is left, with a warning the client sees."""

from __future__ import annotations

import time
import warnings

import pytest
import requests

from hub_config.policy import load_policy
from tests.support import identity as cf

TIER_USERS = {
    "entry": "entry",
    "research": "research",
    "team": "teammember",
    "consortium": "consortium",
}


def _gateway(stack, token: str):
    from dask_gateway import Gateway
    from dask_gateway.auth import JupyterHubAuth

    return Gateway(
        address=stack.gateway_url,
        proxy_address=stack.gateway_proxy,
        auth=JupyterHubAuth(api_token=token),
    )


def _raw_create(stack, token: str, options: dict) -> requests.Response:
    # Straight to the API, bypassing the client's own option checks: the server must refuse.
    return requests.post(
        f"{stack.gateway_url}/api/v1/clusters/",
        json={"cluster_options": options},
        headers={"Authorization": f"jupyterhub {token}"},
        timeout=60,
    )


@pytest.mark.slow
@pytest.mark.parametrize("tier", list(TIER_USERS))
def test_gateway_limits_per_tier(stack, tier):
    policy = load_policy(stack.policy_file)
    lim = policy.gateway_limits(tier)
    user = TIER_USERS[tier]
    cf.login(stack, user)
    token = stack.user_token(user)
    gw = _gateway(stack, token)
    try:
        # The options offered are the tier's, read from the hub groups (the client sent nothing).
        opts = gw.cluster_options()
        assert opts._fields["worker_cores"].max == lim.worker_cores.max
        assert opts._fields["worker_memory"].max == lim.worker_memory_gib.max
        # Over the tier's range: refused by the server with a clear reason.
        for field, value in (
            ("worker_cores", lim.worker_cores.max + 1),
            ("worker_memory", lim.worker_memory_gib.max * 2),
        ):
            r = _raw_create(stack, token, {field: value})
            assert r.status_code == 422, r.text
            why = r.reason + r.text
            assert field in why and "<=" in why, why
        # A forged tier option is not an option at all.
        r = _raw_create(stack, token, {"tier": "consortium"})
        assert r.status_code == 422 and "Unknown fields" in r.reason + r.text
        # Within the limits: a real cluster starts, configured from the tier.
        cluster = gw.new_cluster(
            worker_cores=lim.worker_cores.max, worker_memory=lim.worker_memory_gib.max
        )
        try:
            report = gw.get_cluster(cluster.name)
            assert report.options["worker_cores"] == lim.worker_cores.max
            assert cluster.scheduler_address.startswith("gateway://")
            # More clusters than the tier allows at once: refused.
            if lim.max_clusters == 1:
                with pytest.raises(Exception, match="cluster\\(s\\) at once"):
                    gw.new_cluster()
        finally:
            cluster.shutdown()
    finally:
        for c in gw.list_clusters():
            gw.stop_cluster(c.name)
        gw.close()


@pytest.mark.slow
def test_per_user_totals_across_clusters(stack):
    """Two clusters whose sum would exceed the tier's total: the second is cut, with a warning."""
    from dask_gateway.client import GatewayWarning

    policy = load_policy(stack.policy_file)
    lim = policy.gateway_limits("research")
    assert lim.max_workers == 2 and lim.max_total_workers == 3  # the shrunk test policy
    cf.login(stack, "research")
    gw = _gateway(stack, stack.user_token("research"))
    a = b = None
    try:
        a = gw.new_cluster(worker_cores=1, worker_memory=1)
        with warnings.catch_warnings():
            warnings.simplefilter("error", GatewayWarning)
            a.scale(2)  # within both the per-cluster and the total limit: no warning
        b = gw.new_cluster(worker_cores=1, worker_memory=1)
        with pytest.warns(GatewayWarning, match="limited to 1 workers"):
            b.scale(2)
        # The per-cluster cap still applies on its own (dask-gateway's own message).
        with pytest.warns(GatewayWarning, match="exceed resource limit of 2"):
            a.scale(5)
        # Real workers: A gets 2, B only 1; A computes.
        ca, cb = a.get_client(set_as_default=False), b.get_client(set_as_default=False)
        try:
            ca.wait_for_workers(2, timeout=90)
            assert ca.submit(sum, [1, 2, 3]).result(timeout=60) == 6
            cb.wait_for_workers(1, timeout=90)
            time.sleep(2)  # give an over-eager scheduler time to (wrongly) start a second worker
            assert len(cb.scheduler_info(n_workers=-1)["workers"]) == 1
        finally:
            ca.close()
            cb.close()
        # Adaptive requests are cut the same way.
        with pytest.warns(GatewayWarning, match="limited to 1 workers"):
            b.adapt(minimum=2, maximum=2)
        assert len(gw.list_clusters()) == 2
        # A third cluster is over the tier's cluster count (2 for research).
        with pytest.raises(Exception, match="cluster\\(s\\) at once"):
            gw.new_cluster()
    finally:
        for c in (a, b):
            if c is not None:
                c.shutdown()
        gw.close()


@pytest.mark.slow
def test_cluster_runs_the_servers_environment(stack, monkeypatch):
    """Issue 18: platform_lib.compute asks for the server's ROMAN_ENVIRONMENT; the workers run
    it and report it (platform_lib.environment) with the server's versions. A forged name and an
    environment this machine cannot run are refused by the gateway itself."""
    import os

    from platform_lib.compute import gateway_options
    from platform_lib.environment import current

    cf.login(stack, "entry")
    token = stack.user_token("entry")
    r = _raw_create(stack, token, {"environment": "2099.1"})
    assert r.status_code == 422 and "not a valid option for environment" in r.reason + r.text
    r = _raw_create(stack, token, {"environment": "2026.2"})
    assert r.status_code == 422, r.text
    assert "Cannot start a cluster in environment 2026.2" in r.reason + r.text, (r.reason, r.text)
    monkeypatch.setenv("ROMAN_ENVIRONMENT", "2026.3")
    gw = _gateway(stack, token)
    try:
        options = gateway_options(gw, {"worker_memory": 1})
        assert options.environment == "2026.3" and options.worker_memory == 1
        with pytest.warns(UserWarning, match="workers will run environment 2026.2 while"):
            assert gateway_options(gw, {"environment": "2026.2"}).environment == "2026.2"
        cluster = gw.new_cluster(options)
        try:
            cluster.scale(1)
            client = cluster.get_client()
            client.wait_for_workers(1, timeout=120)
            seen = list(
                client.run(lambda: (os.environ.get("ROMAN_ENVIRONMENT"), current())).values()
            )
            client.close()
        finally:
            cluster.shutdown()
    finally:
        for c in gw.list_clusters():
            gw.stop_cluster(c.name)
        gw.close()
    here = current()
    ((name, worker_env),) = seen
    assert name == worker_env.name == "2026.3"
    for pkg in ("romancal", "romanisim", "roman_datamodels"):
        assert worker_env.versions[pkg] == here.versions[pkg]
