"""The Helm chart's set-up: :func:`configure_kubernetes`, from the chart's values.

In the chart the hub pod mounts the chart's values and the effective tier policy from a
ConfigMap and the generated tokens from a Secret; :mod:`hub_config.chart_values` reads them and
turns them into the same ``PlatformSettings`` the one-machine supervisor writes. Here they become
the cluster's hub: the external configurable-http-proxy (its own Deployment), ``TierKubeSpawner``
pods shaped by the tier policy, the MyST OIDC login, and the gateway, culler and quota services.
What both set-ups share is :mod:`hub_config.modes.common`; nothing here imports the one-machine
package (``hub_config.local``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from hub_config.auth import configure_oidc
from hub_config.chart_values import (
    HOME_VOLUME,
    QUOTA_PORT_IN_HUB,
    TEAM_GROUP_PREFIX,
    ChartValuesError,
    chart_settings,
    get,
    host,
    image,
    name,
    public_url,
    pull_secrets,
    references_post_start,
    secret,
    singleuser_environment,
    values,
)
from hub_config.modes.common import (
    configure_database,
    configure_quota,
    configure_spawner,
)
from hub_config.service_access import grant_service_access

#: the TAP service's name in the hub (its URL prefix /services/tap/)
TAP_SERVICE = "tap"

__all__ = [
    "configure_kubernetes",
    "configure_kubespawner",
    "configure_services",
    "team_volumes_hook",
]


def configure_kubernetes(c: Any, v: dict[str, Any] | None = None) -> None:
    """Wire the hub for the cluster from the chart's values ``v`` (default: the mounted file).

    Stops with the value to set when the chart cannot know it (no issuer, no public URL).
    """
    v = v if v is not None else values()
    url = public_url(v)
    issuer = get("auth.oidc.issuer", "", source=v)
    if not issuer:
        raise ChartValuesError(
            "auth.oidc.issuer is not set: the hub needs the MyST OIDC issuer URL "
            "(helm upgrade ... --set auth.oidc.issuer=https://...)"
        )
    if not url:
        raise ChartValuesError("hub.publicUrl is not set and no ingress host is configured")
    settings = chart_settings(v)

    # Hub and proxy: the proxy is its own Deployment; user servers outlive hub restarts.
    c.JupyterHub.hub_bind_url = "http://:8081"
    c.JupyterHub.hub_connect_url = f"http://{host('hub', v)}:8081"
    c.JupyterHub.bind_url = "http://:8000"
    c.JupyterHub.public_url = url
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.cleanup_proxy = False
    c.JupyterHub.pid_file = ""
    # After a chart upgrade to a newer JupyterHub, hub.db.upgrade lets the hub migrate its schema.
    c.JupyterHub.upgrade_db = bool(get("hub.db.upgrade", False, source=v))
    configure_database(c, settings)
    c.ConfigurableHTTPProxy.should_start = False
    c.ConfigurableHTTPProxy.pid_file = ""

    # Login: MyST through OIDC (or the development provider the kind values deploy); the
    # settings' oidc section is the issuer, client and callback read from the values above.
    configure_oidc(c, dict((settings.model_extra or {})["oidc"]))
    c.RomanOIDCAuthenticator.scope = list(get("auth.oidc.scopes", ["openid"], source=v))
    c.Authenticator.allowed_users = set()
    c.Authenticator.admin_users = set(get("hub.admins", [], source=v) or [])

    c.JupyterHub.concurrent_spawn_limit = int(get("hub.concurrentSpawnLimit", 64, source=v))
    configure_spawner(c, settings)
    configure_quota(c, settings)
    configure_kubespawner(c, v)
    configure_services(c, v)


def configure_kubespawner(c: Any, v: dict[str, Any]) -> None:
    """KubeSpawner's static settings; TierKubeSpawner applies each tier profile on top."""
    su = v["singleuser"]
    namespace = get("_chart.userNamespace", source=v)
    uid, gid = int(su["uid"]), int(su["fsGid"])
    c.JupyterHub.spawner_class = "hub_config.spawner.TierKubeSpawner"
    c.KubeSpawner.namespace = namespace
    c.KubeSpawner.image = image("singleuser", v)
    c.KubeSpawner.image_pull_policy = su["image"].get("pullPolicy", "IfNotPresent")
    if pull_secrets(v):
        c.KubeSpawner.image_pull_secrets = pull_secrets(v)
    c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
    c.KubeSpawner.port = 8888
    c.KubeSpawner.start_timeout = int(su.get("startTimeout", 600))
    c.KubeSpawner.uid = uid
    c.KubeSpawner.gid = gid
    c.KubeSpawner.fs_gid = gid
    c.KubeSpawner.allow_privilege_escalation = False
    c.KubeSpawner.container_security_context = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    c.KubeSpawner.service_account = name("singleuserServiceAccount", v)
    c.KubeSpawner.automount_service_account_token = False
    release = get("_chart.release", source=v)
    # The chart's NetworkPolicies select user pods by these (component is singleuser-server,
    # KubeSpawner's own component label).
    c.KubeSpawner.common_labels = {
        "app.kubernetes.io/name": "roman-platform",
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/managed-by": "kubespawner",
        "app": "jupyterhub",
        "heritage": "jupyterhub",
    }
    if get("scheduling.priorityClasses.enabled", False, source=v):
        c.KubeSpawner.priority_class_name = f"{release}-user"[:63]
    spawner_env = c.Spawner.environment if "environment" in c.Spawner else {}
    c.KubeSpawner.environment = {**dict(spawner_env), **singleuser_environment(v)}
    if get("data.s3.existingSecret", "", source=v):
        c.KubeSpawner.extra_container_config = {
            "envFrom": [{"secretRef": {"name": v["data"]["s3"]["existingSecret"]}}]
        }

    # Home: a PVC from the storage class, sized by TierKubeSpawner from the tier's allocation.
    # ReadWriteMany: one per user, shared by the user's named servers (z2jh's claim-{username}).
    # ReadWriteOnce: a second server on another node could not attach the same claim
    # (Multi-Attach error), so each named server gets its own (claim-{username}--{servername}).
    access = su["storage"].get("accessMode", "ReadWriteOnce")
    c.KubeSpawner.storage_pvc_ensure = True
    c.KubeSpawner.pvc_name_template = (
        "claim-{username}" if access == "ReadWriteMany" else "claim-{user_server}"
    )
    c.KubeSpawner.storage_access_modes = [access]
    if su["storage"].get("storageClassName"):
        c.KubeSpawner.storage_class = su["storage"]["storageClassName"]
    volumes = [{"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
    mounts = [
        {"name": HOME_VOLUME, "mountPath": su["storage"].get("homeMountPath", "/home/jovyan")}
    ]
    if get("data.volume.enabled", False, source=v):
        volumes.append(
            {
                "name": "roman-data",
                "persistentVolumeClaim": {
                    "claimName": v["data"]["volume"]["claimName"] or name("sampleData", v),
                    "readOnly": True,
                },
            }
        )
        mounts.append(
            {"name": "roman-data", "mountPath": v["data"]["volume"]["mountPath"], "readOnly": True}
        )
    if get("references.enabled", False, source=v):
        claim = get("references.claimName", "", source=v) or name("references", v)
        volumes.append(
            {"name": "references", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        )
        mounts.append(
            {"name": "references", "mountPath": v["references"]["mountPath"], "readOnly": True}
        )
        c.KubeSpawner.lifecycle_hooks = references_post_start(v)
    c.KubeSpawner.volumes = volumes
    c.KubeSpawner.volume_mounts = mounts
    c.TierKubeSpawner.scratch_mount_path = su["storage"].get("scratchMountPath", "/scratch")
    c.KubeSpawner.modify_pod_hook = team_volumes_hook(v)


def team_volumes_hook(v: dict[str, Any]) -> Callable[[Any, Any], Any]:
    """A ``modify_pod_hook`` mounting each team volume, read-write, into its members' pods only.

    Membership is the hub group ``team-<name>`` (set by the authenticator from the IdP, or by the
    quota service's team admins), read on the server at spawn time; the pod also gets the team's
    group id so files created there stay group-owned and writable by the team.
    """
    release = get("_chart.release", source=v)
    prefix = get("teams.mountPrefix", "/teams", source=v)
    teams = dict(get("teams.volumes", {}, source=v) or {})

    def hook(spawner: Any, pod: Any) -> Any:
        groups = {g.name for g in getattr(spawner.user, "groups", [])}
        member_of = sorted(t for t in teams if f"{TEAM_GROUP_PREFIX}{t}" in groups)
        if not member_of:
            return pod
        from kubernetes_asyncio.client.models import (
            V1PersistentVolumeClaimVolumeSource,
            V1Volume,
            V1VolumeMount,
        )

        container = next(ct for ct in pod.spec.containers if ct.name == "notebook")
        pod.spec.volumes = list(pod.spec.volumes or [])
        container.volume_mounts = list(container.volume_mounts or [])
        # KubeSpawner builds the pod security context as a plain dict (or a model, older ones).
        psc = pod.spec.security_context
        if psc is None:
            psc = pod.spec.security_context = {}
        if isinstance(psc, dict):
            gids = list(psc.get("supplementalGroups") or [])
        else:
            gids = list(psc.supplemental_groups or [])
        for team in member_of:
            vol = f"team-{team}"
            pod.spec.volumes.append(
                V1Volume(
                    name=vol,
                    persistent_volume_claim=V1PersistentVolumeClaimVolumeSource(
                        claim_name=f"{release}-team-{team}"[:63]
                    ),
                )
            )
            container.volume_mounts.append(V1VolumeMount(name=vol, mount_path=f"{prefix}/{team}"))
            gids.append(int(teams[team]["gid"]))
        if isinstance(psc, dict):
            psc["supplementalGroups"] = sorted(set(gids))
        else:
            psc.supplemental_groups = sorted(set(gids))
        return pod

    return hook


def configure_services(c: Any, v: dict[str, Any]) -> None:
    """The gateway, the culler, the quota and the TAP service as the cluster runs them."""
    services = [
        s
        for s in list(c.JupyterHub.services or [])
        if s.get("name") not in {"dask-gateway", "culler", TAP_SERVICE}
    ]
    roles = [r for r in list(c.JupyterHub.load_roles or []) if r.get("name") != "culler"]
    if get("daskGateway.enabled", True, source=v):
        services.append(
            {
                "name": "dask-gateway",
                "api_token": secret("gateway-token"),
                # /services/dask-gateway/ on the proxy goes to traefik, which routes by prefix.
                "url": f"http://{host('traefik', v)}:80",
                "display": False,
            }
        )
    if get("cull.enabled", True, source=v):
        services.append({"name": "culler", "api_token": secret("culler-token"), "display": False})
        scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
        if get("cull.users", False, source=v):
            scopes.append("admin:users")
        roles.append({"name": "culler", "scopes": scopes, "services": ["culler"]})
    if get("metrics.enabled", False, source=v):
        # Prometheus scrapes /hub/metrics with this token (JupyterHub.authenticate_prometheus).
        services.append(
            {"name": "prometheus", "api_token": secret("metrics-token"), "display": False}
        )
        roles.append({"name": "prometheus", "scopes": ["read:metrics"], "services": ["prometheus"]})
    if get("quota.enabled", True, source=v):
        services = _quota_service(services, v)
    tap = get("data.tap.enabled", False, source=v)
    if tap:
        # The hub-facing TAP proxy: its own Deployment (hub_config/tap/proxy.py in the tap
        # image), an external service. It only asks the hub who a token is (GET /hub/api/user
        # with that token), so its own token needs no role; users' tokens and server tokens get
        # access:services!service=tap below.
        port = int(get("data.tap.proxy.port", 8190, source=v))
        services.append(
            {
                "name": TAP_SERVICE,
                "api_token": secret("tap-token"),
                "url": f"http://{host('tapProxy', v)}:{port}",
                "display": False,
            }
        )
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles
    if tap:
        grant_service_access(c, TAP_SERVICE)


def _quota_service(services: list[dict[str, Any]], v: dict[str, Any]) -> list[dict[str, Any]]:
    """The quota service: its own Deployment on an external database, else inside the hub pod.

    The hub's pre-spawn quota check reads the same database, so with SQLite the service must live
    where the file is: in the hub pod, on the pod's own address (the proxy routes to it).
    """
    out = []
    for svc in services:
        if svc.get("name") != "quota":
            out.append(svc)
            continue
        svc = dict(svc)
        svc["api_token"] = secret("quota-token")
        if get("quota.db.type", "sqlite-pvc", source=v) == "external":
            svc.pop("command", None)
            svc.pop("environment", None)
            svc["url"] = f"http://{host('quota', v)}:{int(get('quota.port', 8090, source=v))}"
        else:
            pod_ip = os.environ.get("POD_IP", "")
            if not pod_ip:
                raise ChartValuesError("POD_IP is not set: the chart's hub Deployment provides it")
            svc["url"] = f"http://{pod_ip}:{QUOTA_PORT_IN_HUB}"
            if get("daskGateway.enabled", True, source=v) and svc.get("command"):
                # Dask usage from the gateway's DaskClusters and pods (the hub's Role allows it).
                svc["command"] = [
                    *svc["command"],
                    "--gateway-kube-namespace",
                    get("_chart.userNamespace", source=v),
                    "--gateway-kube-instance",
                    name("gatewayInstance", v),
                ]
        out.append(svc)
    return out
