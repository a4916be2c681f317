"""The hub wiring both set-ups share, from the one settings shape (``PlatformSettings``).

The login is :func:`hub_config.auth.configure_oidc` in both (the local demo login aside). Each
function here sets one area and is called by both :func:`~hub_config.modes.local.configure_local`
and :func:`~hub_config.modes.kubernetes.configure_kubernetes`; neither mode sets these traits
again. Nothing here imports the one-machine package (``hub_config.local``).
"""

from __future__ import annotations

import os
from typing import Any

from hub_config.quota.hub import JUPYTER_CONFIG_DIR, JUPYTER_DATA_DIR, free_loopback_port
from hub_config.quota.hub import configure_hub as configure_quota_service
from hub_config.quota.services.enforcement import spawn_check
from hub_config.quota.services.grants import DatabaseTierGrants
from platform_lib import env_contract

__all__ = ["configure_database", "configure_spawner", "configure_quota"]


def configure_database(c: Any, settings: Any) -> None:
    """The hub's database, cookie secret and log level, and how it reaches the proxy's API."""
    c.JupyterHub.db_url = settings.hub.db_url
    c.JupyterHub.cookie_secret_file = settings.hub.cookie_secret_file
    c.JupyterHub.log_level = settings.log_level
    c.ConfigurableHTTPProxy.api_url = settings.proxy.api_url
    c.ConfigurableHTTPProxy.auth_token = settings.proxy.auth_token


def configure_spawner(c: Any, settings: Any) -> None:
    """What every server gets, whichever spawner runs it: named servers (the tier policy limits
    them), the command and time-outs, the environment, and the server token's scopes."""
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = 0  # TierSpawnerMixin enforces the tier's limit
    c.Spawner.cmd = settings.singleuser.cmd
    c.Spawner.default_url = settings.singleuser.default_url
    c.Spawner.start_timeout = settings.singleuser.start_timeout
    c.Spawner.http_timeout = settings.singleuser.http_timeout
    c.Spawner.environment = dict(settings.singleuser.environment)
    # The server's own token may reach the gateway as this user and read the user's groups
    # (tier, teams): exactly what Gateway() inside a notebook needs, nothing more.
    gateway = f"access:services!service={settings.gateway.service_name}"
    c.Spawner.server_token_scopes = [
        "users:activity!user",
        "access:servers!server",
        "read:users:groups!user",
        gateway,
    ]
    # Users' own tokens (e.g. from the token page) may use the gateway too.
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", gateway]}]


def configure_quota(c: Any, settings: Any) -> str:
    """The hub-managed quota service at /services/quota/, the quota check before every spawn,
    tier grants at each login and the service URL for notebooks (platform_lib.account).

    The database is ``$ROMAN_QUOTA_DB_URL``, else ``<state>/quota.sqlite``; a YAML file named by
    ``$ROMAN_QUOTA_SETTINGS`` (hub_config/quota/settings.py) overrides any quota setting. Both,
    and ``$ROMAN_POLICY_FILE``, are passed on to the service. Returns the database URL.
    """
    db_url = (
        os.environ.get(env_contract.QUOTA_DB_URL) or f"sqlite:///{settings.state_dir}/quota.sqlite"
    )
    env = {env_contract.POLICY_FILE: os.environ.get(env_contract.POLICY_FILE, "")}
    if os.environ.get(env_contract.QUOTA_SETTINGS):
        env[env_contract.QUOTA_SETTINGS] = os.environ[env_contract.QUOTA_SETTINGS]
    configure_quota_service(
        c,
        port=free_loopback_port(),
        db_url=db_url,
        env={k: v for k, v in env.items() if v},
        extra_args=[
            "--gateway-db-url",
            settings.gateway.db_url,
            "--gateway-url",
            settings.gateway.address,
            "--homes-dir",
            settings.singleuser.users_dir,
        ],
    )
    os.environ[env_contract.QUOTA_DB_URL] = db_url  # the spawner's check reads the same database
    c.TierSpawnerMixin.spawn_checks = [spawn_check]
    # Tier grants made in the quota service reach the authenticator at each login.
    c.RomanOIDCAuthenticator.tier_grants = DatabaseTierGrants(db_url)
    c.Spawner.environment = {
        **dict(c.Spawner.environment),
        env_contract.QUOTA_URL: settings.hub.public_url.rstrip("/") + "/services/quota/",
        # enables platform_lib.account_extension (<server>/roman/account) in user servers
        "JUPYTER_CONFIG_PATH": JUPYTER_CONFIG_DIR,
        # the prebuilt JupyterLab status-bar item (tier, core-hours left, renewal date)
        "JUPYTER_PATH": JUPYTER_DATA_DIR,
    }
    return db_url
