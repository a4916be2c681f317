"""The Helm chart's side of the hub config: its values in, KubeSpawner and friends out.

In the chart, the hub pod mounts the chart's values (secrets removed) and the effective tier
policy from a ConfigMap, and the generated tokens from a Secret (files, one per key). This module
is the one place that reads them, like zero-to-jupyterhub's ``z2jh.py``:

* :func:`chart_settings` turns the values into the same ``PlatformSettings`` the local platform's
  supervisor writes, with ``mode="kubernetes"``, so every section of jupyterhub_config.py reads one
  shape in both modes;
* :func:`configure_kubernetes`, called at the end of jupyterhub_config.py in chart mode, replaces
  what only makes sense on one machine (a proxy the hub starts, process spawners, loopback
  services) with the cluster's equivalents: the external configurable-http-proxy, ``TierKubeSpawner``
  shaped by the tier policy, the MyST OIDC login, the gateway, culler and quota services.

The values were already validated by the chart's values.schema.json at ``helm install``; what is
checked here is only what a template could not know (a missing Secret file, no issuer).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from platform_lib import env_contract

#: Set by the chart's hub Deployment: the values file (from the hub ConfigMap).
CHART_VALUES_ENV = env_contract.CHART_VALUES
#: Set by the chart's hub Deployment: the folder of the hub Secret's files.
CHART_SECRETS_ENV = env_contract.CHART_SECRETS

HOME_VOLUME = "home"
TEAM_GROUP_PREFIX = "team-"
QUOTA_PORT_IN_HUB = 8090


class ChartValuesError(RuntimeError):
    """The mounted values or secrets are missing or incomplete; the message says which."""


def in_chart() -> bool:
    """True when this hub runs from the Helm chart."""
    return bool(os.environ.get(CHART_VALUES_ENV))


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ChartValuesError(f"cannot read the chart values {path}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise ChartValuesError(f"chart values {path} are not a mapping")
    return data


def values(path: str | None = None) -> dict[str, Any]:
    """The chart's values (as rendered into the hub ConfigMap)."""
    path = path or os.environ.get(CHART_VALUES_ENV)
    if not path:
        raise ChartValuesError(f"{CHART_VALUES_ENV} is not set: not running from the Helm chart")
    return _load(path)


def get(key: str, default: Any = None, *, source: dict[str, Any] | None = None) -> Any:
    """A value by dotted path (``"singleuser.image.tag"``), or ``default`` when absent."""
    node: Any = values() if source is None else source
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def secret(key: str) -> str:
    """One key of the hub Secret (mounted as files)."""
    folder = os.environ.get(CHART_SECRETS_ENV)
    if not folder:
        raise ChartValuesError(f"{CHART_SECRETS_ENV} is not set: not running from the Helm chart")
    path = Path(folder) / key
    try:
        return path.read_text().strip()
    except OSError:
        raise ChartValuesError(f"the hub Secret has no key {key!r} (looked for {path})") from None


def name(short: str, v: dict[str, Any] | None = None) -> str:
    """The full name of one of the chart's objects (``hub``, ``proxyApi``, ``traefik``...)."""
    names = get("_chart.names", {}, source=v)
    if short not in names:
        raise ChartValuesError(
            f"chart values carry no object name {short!r} (known: {sorted(names)})"
        )
    return names[short]


def image(component: str, v: dict[str, Any]) -> str:
    """An image's full reference as the chart resolved it (global.registry applied, rp.imageRef)."""
    images = get("_chart.images", {}, source=v)
    if component not in images:
        raise ChartValuesError(f"chart values carry no image reference {component!r}")
    return images[component]


def pull_secrets(v: dict[str, Any]) -> list[str]:
    """The pull secrets every pod of the release gets (rp.pullSecretNames): user and Dask pods too."""
    return list(get("_chart.pullSecrets", [], source=v) or [])


def public_url(v: dict[str, Any]) -> str:
    """Where users open the hub (hub.publicUrl, else the first ingress host over https)."""
    url = get("hub.publicUrl", "", source=v)
    hosts = get("ingress.hosts", [], source=v)
    if not url and get("ingress.enabled", False, source=v) and hosts:
        url = f"https://{hosts[0]}"
    return url.rstrip("/")


# ---------------------------------------------------------------------------- addresses
def host(short: str, v: dict[str, Any]) -> str:
    """A chart Service's address from any namespace: ``<name>.<release namespace>.svc``.

    User servers and Dask pods run in ``singleuser.namespace`` when it is set, where a short
    name would resolve to nothing (their DNS search path starts with their own namespace).
    """
    return f"{name(short, v)}.{get('_chart.namespace', source=v)}.svc"


def hub_api_url(v: dict[str, Any]) -> str:
    return f"http://{host('hub', v)}:8081/hub/api"


def gateway_address(v: dict[str, Any]) -> str:
    """The gateway's HTTP address for notebooks (traefik, routed to the API by prefix)."""
    return f"http://{host('traefik', v)}:80/services/dask-gateway"


def gateway_public_address(v: dict[str, Any]) -> str:
    """The gateway as a browser reaches it (dashboard links): the hub's public URL, whose proxy
    routes /services/dask-gateway/ to traefik (the dask-gateway service's ``url``)."""
    return f"{public_url(v)}/services/dask-gateway"


def gateway_proxy_address(v: dict[str, Any]) -> str:
    return f"gateway://{host('traefik', v)}:8786"


def quota_url(v: dict[str, Any]) -> str:
    """The quota service for notebooks, through the proxy (it routes /services/quota/)."""
    return f"http://{host('proxyPublic', v)}:80/services/quota/"


def quota_public_url(v: dict[str, Any]) -> str:
    """The quota service's pages as a browser opens them (the status bar's and /roman/account's link)."""
    return f"{public_url(v)}/services/quota/"


def data_environment(v: dict[str, Any]) -> dict[str, str]:
    """The data contract's variables (same as the chart's rp.dataEnv for Dask pods)."""
    env = {
        env_contract.DATA_URL: (
            get("data.volume.mountPath", source=v)
            if get("data.volume.enabled", False, source=v)
            else get("data.url", "", source=v)
        ),
        "CRDS_PATH": get("data.crds.path", "", source=v),
        "CRDS_SERVER_URL": get("data.crds.serverUrl", "", source=v),
        "STPSF_PATH": get("data.stpsfPath", "", source=v),
        env_contract.DATA_S3_ENDPOINT: get("data.s3.endpoint", "", source=v),
    }
    if get("references.enabled", False, source=v):
        # RRN's layout: a writable per-user CRDS cache (in the home) whose files link to the
        # shared preloaded cache (references_post_start links them); pinned STPSF data.
        mount = get("references.mountPath", source=v)
        env.update(
            {
                "CRDS_PATH": get("references.crds.userCachePath", source=v),
                "CRDS_READONLY_CACHE": "0",
                "CRDS_SERVER_URL": get("references.crds.serverUrl", source=v),
                "STPSF_PATH": f"{mount}/stpsf-data",
            }
        )
    return {k: str(val) for k, val in env.items() if val}


def references_post_start(v: dict[str, Any]) -> dict[str, Any]:
    """The notebook's postStart hook: RRN's symlink-crds. Mirror the shared cache's folders in
    the user's CRDS cache and link each file, so the cache is complete yet stays writable."""
    shared = f"{get('references.mountPath', source=v)}/crds"
    script = (
        f"cd {shared} 2>/dev/null || exit 0; "
        r'find . -type d -exec mkdir -p "$CRDS_PATH/{}" \; ; '
        f'find . -type f -exec sh -c \'[ -e "$CRDS_PATH/$1" ] || ln -s "{shared}/$1" "$CRDS_PATH/$1"\' _ {{}} \\;'
    )
    return {"postStart": {"exec": {"command": ["sh", "-c", script]}}}


def singleuser_environment(v: dict[str, Any]) -> dict[str, str]:
    env = data_environment(v)
    if get("daskGateway.enabled", True, source=v):
        env.update(
            {
                "DASK_GATEWAY__ADDRESS": gateway_address(v),
                "DASK_GATEWAY__PUBLIC_ADDRESS": gateway_public_address(v),
                "DASK_GATEWAY__PROXY_ADDRESS": gateway_proxy_address(v),
                "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
            }
        )
    # The writable places (the shared contract's names); KubeSpawner expands {username}.
    if get("data.userStore.userPrefix", "", source=v):
        env[env_contract.USER_STORE_URL] = f"{v['data']['userStore']['userPrefix']}{{username}}/"
    if get("data.userStore.teamPrefix", "", source=v):
        env[env_contract.TEAM_STORE_URL] = v["data"]["userStore"]["teamPrefix"]
    if get("quota.enabled", True, source=v):
        env[env_contract.QUOTA_URL] = quota_url(v)
        env[env_contract.QUOTA_PUBLIC_URL] = quota_public_url(v)
    env.update({k: str(val) for k, val in (get("singleuser.extraEnv", {}, source=v) or {}).items()})
    return env


# ---------------------------------------------------------------------------- settings
def chart_settings(v: dict[str, Any] | None = None) -> Any:
    """The chart's values as the platform settings jupyterhub_config.py reads in both modes.

    Fields that describe processes only the local supervisor runs (the demo logins, the local
    gateway's listen addresses and commands) get inert values: :func:`configure_kubernetes`
    replaces everything they would configure.
    """
    from hub_config.local.settings import PlatformSettings

    v = v if v is not None else values()
    url = public_url(v)
    db_url = (
        os.environ.get(env_contract.HUB_DB_URL) or "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
    )
    extra: dict[str, Any] = {}
    issuer = get("auth.oidc.issuer", "", source=v)
    if issuer and url:
        # The section hub_config.auth.configure_oidc reads (as the supervisor writes it locally).
        extra["oidc"] = {
            "issuer": issuer,
            "client_id": get("auth.oidc.clientId", source=v),
            "client_secret": os.environ.get(env_contract.OIDC_CLIENT_SECRET, ""),
            "callback_url": f"{url}/hub/oauth_callback",
            "post_logout_redirect_uri": f"{url}/hub/",
        }
    return PlatformSettings(
        **extra,
        mode="kubernetes",
        state_dir="/srv/jupyterhub",
        log_level=get("hub.logLevel", "INFO", source=v),
        hub={
            "ip": "",
            "port": 8081,
            "public_url": url or f"http://{name('proxyPublic', v)}",
            "api_url": hub_api_url(v),
            "db_url": db_url,
            "cookie_secret_file": "/srv/jupyterhub/jupyterhub_cookie_secret",
            "pid_file": "/tmp/jupyterhub.pid",
        },
        proxy={
            "command": [],
            "api_url": f"http://{host('proxyApi', v)}:8001",
            "auth_token": os.environ.get("CONFIGPROXY_AUTH_TOKEN", ""),
            "pid_file": "/tmp/proxy.pid",
        },
        demo={"users": [], "admin_users": [], "password": os.urandom(24).hex()},
        singleuser={
            "cmd": ["jupyterhub-singleuser"],
            "users_dir": "",
            "allow_root": False,
            "default_url": "/lab",
            "start_timeout": int(get("singleuser.startTimeout", 600, source=v)),
            "http_timeout": 120,
            "environment": singleuser_environment(v),
        },
        gateway={
            "service_name": "dask-gateway",
            "api_token": _secret_or_empty("gateway-token"),
            "address": gateway_address(v),
            "proxy_address": gateway_proxy_address(v),
            "listen": f"{name('traefik', v)}:80",
            "tcp_listen": f"{name('traefik', v)}:8786",
            "private_listen": f"{name('gatewayApi', v)}:8000",
            "db_url": "",
            "encrypt_key": "",
            "proxy_token": "",
            "clusters_dir": "",
            "scheduler_cmd": ["dask", "scheduler"],
            "worker_cmd": ["dask", "worker"],
            "worker_cores": 1,
            "worker_memory": "2 G",
            "idle_timeout": 3600,
        },
    )


def _secret_or_empty(key: str) -> str:
    try:
        return secret(key)
    except ChartValuesError:
        return ""


# ---------------------------------------------------------------------------- the hub
def configure_kubernetes(c: Any, v: dict[str, Any] | None = None) -> None:
    """Everything cluster-specific, applied last so it wins over the local-mode lines."""
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
    c.JupyterHub.concurrent_spawn_limit = int(get("hub.concurrentSpawnLimit", 64, source=v))
    c.ConfigurableHTTPProxy.should_start = False
    c.ConfigurableHTTPProxy.pid_file = ""
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = 0  # the tier policy decides (TierSpawnerMixin)

    # Login: MyST through OIDC (or the development provider the kind values deploy).
    c.JupyterHub.authenticator_class = "hub_config.auth.RomanOIDCAuthenticator"
    c.RomanOIDCAuthenticator.oidc_issuer = issuer
    c.RomanOIDCAuthenticator.client_id = get("auth.oidc.clientId", source=v)
    c.RomanOIDCAuthenticator.client_secret = os.environ.get(env_contract.OIDC_CLIENT_SECRET, "")
    c.RomanOIDCAuthenticator.oauth_callback_url = f"{url}/hub/oauth_callback"
    c.RomanOIDCAuthenticator.post_logout_redirect_uri = f"{url}/hub/"
    c.RomanOIDCAuthenticator.scope = list(get("auth.oidc.scopes", ["openid"], source=v))
    c.Authenticator.allowed_users = set()
    c.Authenticator.admin_users = set(get("hub.admins", [], source=v) or [])

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


def team_volumes_hook(v: dict[str, Any]):
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
    """The gateway, the culler and the quota service as the cluster runs them."""
    services = [
        s
        for s in list(c.JupyterHub.services or [])
        if s.get("name") not in {"dask-gateway", "culler"}
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
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles


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
