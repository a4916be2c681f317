"""The chart's containers call the project's programs with arguments those programs accept.

Templates and command-line interfaces drift apart silently until a pod crash-loops; this parses
each rendered command with the program's own parser.
"""

from __future__ import annotations

import shlex


def _container(chart, config, deployment, name):
    dep = chart.find(chart.render(config), "Deployment", deployment)
    return next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def _expand(args, env):
    """Kubernetes' $(VAR) expansion in command arguments."""
    out = []
    for a in args:
        for k, v in env.items():
            a = a.replace(f"$({k})", v)
        out.append(a)
    return out


def test_culler_arguments(chart):
    from jupyterhub_idle_culler import IdleCuller

    cmd = _container(chart, "default", "rp-culler", "culler")["command"]
    assert cmd[:3] == ["python", "-m", "jupyterhub_idle_culler"]
    app = IdleCuller()
    app.parse_command_line(cmd[3:])
    assert app.url == "http://rp-hub:8081/hub/api"
    assert app.timeout == 3600 and app.cull_every == 300 and app.cull_users is False


def test_dev_oidc_provider_arguments(chart):
    from hub_config.oidc_dev.__main__ import build_parser

    ct = _container(chart, "kind", "rp-oidc-dev", "oidc")
    assert ct["command"][:3] == ["python", "-m", "hub_config.oidc_dev"]
    args = build_parser().parse_args(_expand(ct["command"][3:], {"ROMAN_OIDC_CLIENT_SECRET": "s"}))
    assert args.issuer == "http://kind-node.invalid:30081"
    assert args.redirect_uri == ["http://kind-node.invalid:30080/hub/oauth_callback"]
    assert args.client_id == "roman-platform" and args.client_secret == "s"
    env = {e["name"]: e.get("value") for e in ct["env"]}
    assert env["ROMAN_OIDC_DEV_IN_CLUSTER"] == "development"


def test_gateway_commands(chart):
    from dask_gateway_server.app import DaskGateway

    api = _container(chart, "default", "rp-gateway-api", "gateway")["command"]
    ctl = _container(chart, "default", "rp-gateway-controller", "controller")["command"]
    assert api[0] == ctl[0] == "dask-gateway-server"
    assert ctl[1] == "kube-controller" and "kube-controller" in DaskGateway.subcommands
    assert api[1:] == ["--config", "/etc/dask-gateway/dask_gateway_config.py"], shlex.join(api)


def test_hub_command_uses_the_images_config(chart):
    ct = _container(chart, "default", "rp-hub", "hub")
    assert ct["command"] == ["jupyterhub", "--config", "/etc/jupyterhub/jupyterhub_config.py"]
    dockerfile = (chart.REPO / "images" / "hub" / "Dockerfile").read_text()
    assert "/etc/jupyterhub/jupyterhub_config.py" in dockerfile


def test_external_quota_service_is_a_working_hub_oauth_client(chart, monkeypatch):
    """The quota Deployment's environment makes the HubOAuth JupyterHub registers for 'quota'."""
    from jupyterhub.services.auth import HubOAuth

    ct = _container(chart, "cloud-production", "rp-quota", "quota")
    assert ct["command"] == ["python", "-m", "hub_config.quota.service"]
    from hub_config.quota.service import build_parser, settings_from_args

    settings = settings_from_args(build_parser().parse_args(ct["args"]))
    assert settings.gateway_url == "http://rp-traefik:80/services/dask-gateway"
    # On Kubernetes, Dask usage comes from the gateway's DaskClusters and pods in the user
    # namespace, which the quota service's own Role lets it list (and nothing more).
    users_ns = "roman-users"  # singleuser.namespace in examples/cloud-production.yaml
    assert settings.gateway_kube_namespace == users_ns
    assert settings.gateway_kube_instance == "rp-gateway"
    objs = chart.render("cloud-production")
    pod = chart.find(objs, "Deployment", "rp-quota")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "rp-quota" and pod["automountServiceAccountToken"] is True
    role = chart.find(objs, "Role", "rp-quota")
    assert role["metadata"]["namespace"] == users_ns
    assert sorted(
        (tuple(r["apiGroups"]), tuple(r["resources"]), tuple(r["verbs"])) for r in role["rules"]
    ) == [
        (("",), ("pods",), ("get", "list")),
        (("gateway.dask.org",), ("daskclusters",), ("get", "list")),
    ]
    binding = chart.find(objs, "RoleBinding", "rp-quota")
    assert binding["metadata"]["namespace"] == users_ns
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rp-quota", "namespace": "roman"}
    ]
    for e in ct["env"]:
        monkeypatch.setenv(e["name"], e.get("value", "from-a-secret"))
    auth = HubOAuth()
    assert auth.api_url == "http://rp-hub:8081/hub/api"
    assert (
        auth.oauth_client_id == "service-quota"
    )  # what the hub names the 'quota' service's client
    assert auth.oauth_redirect_uri == "/services/quota/oauth_callback"
    assert auth.access_scopes == {"access:services!service=quota"}
