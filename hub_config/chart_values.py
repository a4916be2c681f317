"""The Helm chart's side of the hub config: its values in, KubeSpawner and friends out.

In the chart, the hub pod mounts the chart's values (secrets removed) and the effective tier
policy from a ConfigMap, and the generated tokens from a Secret (files, one per key). This module
is the one place that reads them, like zero-to-jupyterhub's ``z2jh.py``:

* :func:`chart_settings` turns the values into the same ``PlatformSettings`` the local platform's
  supervisor writes, with ``mode="kubernetes"``, so the wiring both set-ups share
  (:mod:`hub_config.modes.common`) reads one shape;
* the small readers (:func:`get`, :func:`secret`, :func:`name`, :func:`host`, the service URLs,
  the servers' environment) that :func:`hub_config.modes.kubernetes.configure_kubernetes` uses
  to wire the cluster's hub.

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


def tap_url(v: dict[str, Any]) -> str:
    """The TAP service for notebooks, through the proxy (it routes /services/tap/ to the hub
    service), as the server's hub token reaches it (platform_lib.data.tap_client)."""
    return f"http://{host('proxyPublic', v)}:80/services/tap"


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
    if get("data.tap.enabled", False, source=v):
        env[env_contract.TAP_URL] = tap_url(v)
    env.update({k: str(val) for k, val in (get("singleuser.extraEnv", {}, source=v) or {}).items()})
    return env


# ---------------------------------------------------------------------------- settings
def chart_settings(v: dict[str, Any] | None = None) -> Any:
    """The chart's values as the platform settings jupyterhub_config.py reads in both modes.

    Fields that describe processes only the local supervisor runs (the demo logins, the local
    gateway's listen addresses and commands) get inert values: the Kubernetes set-up
    (:mod:`hub_config.modes.kubernetes`) never reads them.
    """
    from hub_config.settings import PlatformSettings

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
