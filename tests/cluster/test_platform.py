"""End to end on a real cluster: login, a server per tier, a Dask-Gateway cluster, the limits.

Marker ``cluster``: run with ``pytest -m cluster tests/cluster`` after scripts/kind-up.sh.
Skipped (with the reason) where no cluster or release is reachable.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from hub_config.policy import parse_policy

pytestmark = pytest.mark.cluster

GIB = 1024**3


def _quantity(q: str) -> float:
    units = {
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "m": 1e-3,
    }
    for suffix, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if q.endswith(suffix):
            return float(q[: -len(suffix)]) * factor
    return float(q)


def _run_in_server(chart_cluster, platform, pod: str, script: str) -> str:
    """A Python script in the notebook container of a user's server (its stdout)."""
    return chart_cluster.kubectl(
        "exec",
        "-n",
        platform.user_namespace,
        pod,
        "-c",
        "notebook",
        "--",
        "python",
        "-c",
        script,
        timeout=900,
    ).stdout


def test_release_is_ready(platform, chart_cluster):
    for name in ("hub", "proxy", "gateway-api", "gateway-controller", "traefik"):
        dep = chart_cluster.kget("deployment", f"{chart_cluster.RELEASE}-{name}")
        assert dep["status"].get("readyReplicas", 0) >= 1, name


@pytest.mark.parametrize("tier", ["entry", "research", "team", "consortium"])
def test_spawn_each_tier_with_its_limits(platform, chart_cluster, tier):
    policy = parse_policy(platform.policy)
    username = chart_cluster.TIER_USERS[tier]
    s = chart_cluster.login(platform, username)
    api = f"{platform.hub_url}/hub/api/users/{username}"
    me = s.get(api, timeout=30).json()
    assert f"tier-{tier}" in me["groups"], me["groups"]
    profile_name, profile = next(iter(policy.profiles_for(tier).items()))
    r = s.post(f"{api}/server", json={"profile": profile_name}, timeout=60)
    assert r.status_code in (201, 202), r.text[:300]
    try:
        chart_cluster.wait_until(
            f"{username}'s server",
            lambda: s.get(api, timeout=30).json()["servers"].get("", {}).get("ready"),
            600,
        )
        pods = json.loads(
            chart_cluster.kubectl(
                "get",
                "pods",
                "-n",
                platform.user_namespace,
                "-o",
                "json",
                "-l",
                f"hub.jupyter.org/username={username},app.kubernetes.io/component=singleuser-server",
            ).stdout
        )["items"]
        assert len(pods) == 1
        ct = next(c for c in pods[0]["spec"]["containers"] if c["name"] == "notebook")
        res = ct["resources"]
        assert _quantity(res["limits"]["cpu"]) == pytest.approx(profile.cpu_limit)
        assert _quantity(res["requests"]["cpu"]) == pytest.approx(profile.cpu_guarantee)
        assert _quantity(res["limits"]["memory"]) == pytest.approx(
            profile.mem_limit_bytes, rel=1e-3
        )
        assert ct["securityContext"]["runAsNonRoot"] is True
        if tier == "entry":  # an Entry user asking for a larger profile is refused by the hub
            s.delete(f"{api}/server", timeout=60)
            chart_cluster.wait_until(
                "server stop", lambda: not s.get(api, timeout=30).json()["servers"], 300
            )
            refused = s.post(f"{api}/server", json={"profile": "large"}, timeout=60)
            assert refused.status_code == 403 or "not available" in refused.text, refused.text[:300]
    finally:
        s.delete(f"{api}/server", timeout=60)


def test_dask_gateway_cluster_computes_within_the_tier(platform, chart_cluster):
    """From inside a research user's server: a gateway cluster, a computation, the worker limits."""
    policy = parse_policy(platform.policy)
    username = "research"
    s, api = chart_cluster.start_server(platform, username)
    try:
        pod = f"jupyter-{username}"
        script = (
            "from dask_gateway import Gateway\n"
            "g = Gateway()\n"
            "c = g.new_cluster(worker_cores=1, worker_memory=2)\n"
            "c.scale(2)\n"
            "cl = c.get_client()\n"
            "cl.wait_for_workers(2, timeout=300)\n"
            "print('RESULT', cl.submit(sum, range(10)).result(), c.name)\n"
            "c.shutdown()\n"
        )
        out = _run_in_server(chart_cluster, platform, pod, script)
        assert "RESULT 45" in out, out[-1000:]
        lim = policy.gateway_limits("research")
        assert lim.worker_cores.min <= 1 <= lim.worker_cores.max
    finally:
        s.delete(f"{api}/server", timeout=60)


def test_worker_pods_get_the_chosen_limits(platform, chart_cluster):
    """A cluster started through the gateway API: its worker pods' limits in the API server."""
    username = "research"
    s = chart_cluster.login(platform, username)
    api = f"{platform.hub_url}/hub/api/users/{username}"
    s.post(f"{api}/server", json={"profile": "small"}, timeout=60)
    pod = f"jupyter-{username}"

    def in_notebook(script: str) -> str:
        return chart_cluster.kubectl(
            "exec",
            "-n",
            platform.user_namespace,
            pod,
            "-c",
            "notebook",
            "--",
            "python",
            "-c",
            script,
            timeout=900,
        ).stdout

    name = None
    try:
        chart_cluster.wait_until(
            "the server",
            lambda: s.get(api, timeout=30).json()["servers"].get("", {}).get("ready"),
            600,
        )
        out = in_notebook(
            "from dask_gateway import Gateway\n"
            "c = Gateway().new_cluster(worker_cores=1, worker_memory=2, shutdown_on_close=False)\n"
            "c.scale(1); c.get_client().wait_for_workers(1, timeout=300); print('NAME', c.name)\n"
        )
        name = out.split("NAME", 1)[1].strip()
        pods = json.loads(
            chart_cluster.kubectl(
                "get",
                "pods",
                "-n",
                platform.user_namespace,
                "-o",
                "json",
                "-l",
                f"gateway.dask.org/cluster={name.split('.')[-1]},app.kubernetes.io/component=dask-worker",
            ).stdout
        )["items"]
        assert pods, "no worker pod"
        res = pods[0]["spec"]["containers"][0]["resources"]
        assert _quantity(res["limits"]["cpu"]) == pytest.approx(1)
        assert _quantity(res["limits"]["memory"]) == pytest.approx(2 * GIB, rel=1e-3)
        assert pods[0]["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] is True
    finally:
        if name:
            in_notebook(
                f"from dask_gateway import Gateway\nGateway().connect({name!r}).shutdown()\n"
            )
        s.delete(f"{api}/server", timeout=60)


def test_production_paths_from_inside_a_server(platform, chart_cluster):
    """Issue 16 on a real cluster: from a research user's server, the quota service answers by
    its in-cluster URL; a gateway cluster's workers read the sample data; traefik routes the
    cluster's dashboard (its CRD provider started: item 1); the CRDS cache is writable and
    linked to the shared one when references are enabled."""
    username = "research"
    s = chart_cluster.login(platform, username)
    api = f"{platform.hub_url}/hub/api/users/{username}"
    r = s.post(f"{api}/server", json={"profile": "small"}, timeout=60)
    assert r.status_code in (201, 202), r.text[:300]
    pod = f"jupyter-{username}"
    try:
        chart_cluster.wait_until(
            "the server",
            lambda: s.get(api, timeout=30).json()["servers"].get("", {}).get("ready"),
            600,
        )
        script = textwrap.dedent("""
            from platform_lib.account import account
            from dask_gateway import Gateway
            print('TIER', account().tier)
            c = Gateway().new_cluster(worker_cores=1, worker_memory=2)
            c.scale(1)
            c.get_client().wait_for_workers(1, timeout=300)
            def files():
                import os
                return sum(len(f) for _, _, f in os.walk(os.environ['ROMAN_DATA_URL']))
            print('WORKER_FILES', c.get_client().submit(files).result())
            print('DASHBOARD', c.dashboard_link)
            c.shutdown()
        """)
        out = _run_in_server(chart_cluster, platform, pod, script)
        assert "TIER research" in out, out[-1000:]
        assert int(out.split("WORKER_FILES", 1)[1].split()[0]) > 0, out[-1000:]
        dashboard = out.split("DASHBOARD", 1)[1].split()[0]
        assert dashboard.startswith(platform.hub_url), dashboard  # DASK_GATEWAY__PUBLIC_ADDRESS
        traefik_logs = chart_cluster.kubectl(
            "logs",
            "-n",
            chart_cluster.NAMESPACE,
            f"deployment/{chart_cluster.RELEASE}-traefik",
            "--tail=500",
        ).stdout
        assert "nodes is forbidden" not in traefik_logs
    finally:
        s.delete(f"{api}/server", timeout=60)
