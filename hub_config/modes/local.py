"""The one-machine set-up (``roman-platform up``): :func:`configure_local`.

Everything (ports, secrets, paths) was resolved by the supervisor, which wrote the settings file
named by ``$ROMAN_PLATFORM_SETTINGS`` (hub_config/settings.py). The hub starts its own
configurable-http-proxy, spawns servers as local processes (``TierLocalPlatformSpawner``: the tier
policy's profiles form, server-side checks, cgroup/rlimit limits) and reaches the supervisor's
dask-gateway as an external service.
"""

from __future__ import annotations

import os
from typing import Any

from hub_config.auth import configure_oidc
from hub_config.local.spawner import LocalPlatformSpawner
from hub_config.modes.common import configure_database, configure_quota, configure_spawner
from hub_config.settings import SETTINGS_ENV, PlatformSettings, load_settings
from hub_config.spawner import TierLocalSpawnerMixin

__all__ = ["TierLocalPlatformSpawner", "configure_local", "local_settings"]

#: How many spawns run at once; the rest are answered 429 + Retry-After (the spawn page and
#: clients retry). On 2 cores 16 spawns at once all missed the 60 s http_timeout, 8 at once all
#: started (p50 34 s); benchmarks/platform/load.py measures it (docs/capacity.md).
CONCURRENT_SPAWN_LIMIT = 6


class TierLocalPlatformSpawner(TierLocalSpawnerMixin, LocalPlatformSpawner):
    """The local platform's spawner under the tier policy."""


def local_settings() -> PlatformSettings:
    """The settings the supervisor wrote; a clear error when the hub was not started by it."""
    if not os.environ.get(SETTINGS_ENV):
        raise RuntimeError(
            f"{SETTINGS_ENV} is not set: start the local platform with 'roman-platform up' "
            "(or deploy the Helm chart)"
        )
    return load_settings()


def configure_local(c: Any, settings: PlatformSettings) -> None:
    """Wire the hub for one machine from the supervisor's ``settings``."""
    # Hub and proxy: the hub starts the proxy; stopping the platform stops every user server.
    c.JupyterHub.bind_url = settings.hub.public_url
    c.JupyterHub.hub_ip = settings.hub.ip
    c.JupyterHub.hub_port = settings.hub.port
    c.JupyterHub.pid_file = settings.hub.pid_file
    c.JupyterHub.cleanup_servers = True
    c.JupyterHub.cleanup_proxy = True
    configure_database(c, settings)
    c.ConfigurableHTTPProxy.command = settings.proxy.command
    c.ConfigurableHTTPProxy.pid_file = settings.proxy.pid_file
    c.ConfigurableHTTPProxy.should_start = True

    # Login: against the development provider the supervisor started (settings.oidc).
    oidc: dict[str, Any] | None = getattr(settings, "oidc", None)  # an extra section
    if oidc:
        configure_oidc(c, dict(oidc))
    else:
        # Settings without an oidc section (an older state folder): the loopback-only demo
        # login. DemoAuthenticator refuses any non-loopback URL, so it cannot guard a real
        # deployment.
        c.JupyterHub.authenticator_class = "hub_config.local.devauth.DemoAuthenticator"
        c.DemoAuthenticator.demo_password = settings.demo.password
        c.DemoAuthenticator.public_url = settings.hub.public_url
        c.Authenticator.allowed_users = set(settings.demo.users)
        c.Authenticator.admin_users = set(settings.demo.admin_users)

    # Servers: local processes under the tier policy.
    c.JupyterHub.spawner_class = TierLocalPlatformSpawner
    c.LocalPlatformSpawner.users_dir = settings.singleuser.users_dir
    c.LocalPlatformSpawner.allow_root = settings.singleuser.allow_root
    # Per-user system accounts, or single-account mode (hub_config/local/accounts.py).
    c.LocalPlatformSpawner.accounts = (
        settings.accounts.model_dump() if settings.accounts is not None else {}
    )
    c.JupyterHub.concurrent_spawn_limit = CONCURRENT_SPAWN_LIMIT
    configure_spawner(c, settings)

    # The gateway is an external service: the hub knows its token, it is started before the hub.
    c.JupyterHub.services = [
        {
            "name": settings.gateway.service_name,
            "api_token": settings.gateway.api_token,
            "display": False,
        },
    ]

    quota_db = configure_quota(c, settings)
    if oidc and oidc.get("users_file"):  # the demo accounts' teams exist, so their options work
        from hub_config.local.demo_teams import seed_demo_teams

        seed_demo_teams(quota_db, oidc["users_file"])

    # Discovery (issue 17): the hub-facing TAP service, when the supervisor runs DaCHS.
    tap: dict[str, Any] | None = getattr(settings, "tap", None)  # an extra section
    if tap:
        from hub_config.local.tap_platform import configure_hub as configure_tap

        configure_tap(c, dict(tap))
