# The one JupyterHub configuration file of the Roman Science Platform.
#
# Loaded by the local platform (``roman-platform up``, settings from the JSON file named by
# ROMAN_PLATFORM_SETTINGS) and by the Helm chart's hub image (values through
# hub_config/chart_values.py). Each area keeps its own clearly separated section below; the
# logic lives in importable modules, this file only wires them.
# ruff: noqa: F821  (``c`` is injected by traitlets when it loads this file)

import os

from hub_config import chart_values
from platform_lib import env_contract

# ============================================================================ SETTINGS
# Local mode: everything (ports, secrets, paths) was resolved by the supervisor.
# Chart mode (issue 6) adds its branch here, reading z2jh-style values instead.
from hub_config.local.settings import SETTINGS_ENV, load_settings

if chart_values.in_chart():
    # Chart mode (issue 6): the Helm chart's values, in the same shape (settings.mode ==
    # "kubernetes"); the KUBERNETES section at the end replaces the one-machine parts.
    settings = chart_values.chart_settings()
elif not os.environ.get(SETTINGS_ENV):
    raise RuntimeError(
        f"{SETTINGS_ENV} is not set: start the local platform with 'roman-platform up' "
        "(or deploy the Helm chart)"
    )
else:
    settings = load_settings()

# ============================================================================ HUB, PROXY, DATABASE
c.JupyterHub.bind_url = settings.hub.public_url
c.JupyterHub.hub_ip = settings.hub.ip
c.JupyterHub.hub_port = settings.hub.port
c.JupyterHub.db_url = settings.hub.db_url
c.JupyterHub.cookie_secret_file = settings.hub.cookie_secret_file
c.JupyterHub.pid_file = settings.hub.pid_file
c.JupyterHub.log_level = settings.log_level
c.JupyterHub.cleanup_servers = True  # stopping the platform stops every user server
c.JupyterHub.cleanup_proxy = True
c.ConfigurableHTTPProxy.command = settings.proxy.command
c.ConfigurableHTTPProxy.api_url = settings.proxy.api_url
c.ConfigurableHTTPProxy.auth_token = settings.proxy.auth_token
c.ConfigurableHTTPProxy.pid_file = settings.proxy.pid_file
c.ConfigurableHTTPProxy.should_start = True

# ============================================================================ AUTHENTICATION
# The MyST-style OIDC login (issue 4, hub_config/auth.py): against the development provider the
# supervisor started (settings.oidc), or the deployment's broker in chart mode (chart_values).
# Tier -> group tier-<name>, teams -> team-<name>[-admins], platform admins -> hub admins.
_oidc = getattr(settings, "oidc", None)
if _oidc:
    from hub_config.auth import configure_oidc

    configure_oidc(c, dict(_oidc))
else:
    # Settings without an oidc section (an older state folder): the loopback-only demo login.
    # DemoAuthenticator refuses any non-loopback URL, so it cannot guard a real deployment.
    c.JupyterHub.authenticator_class = "hub_config.local.devauth.DemoAuthenticator"
    c.DemoAuthenticator.demo_password = settings.demo.password
    c.DemoAuthenticator.public_url = settings.hub.public_url
    c.Authenticator.allowed_users = set(settings.demo.users)
    c.Authenticator.admin_users = set(settings.demo.admin_users)

# ============================================================================ SPAWNER
# Tiers (issue 4): hub_config/spawner.py's TierLocalSpawnerMixin on this class (profiles form,
# server-side checks, cgroup/rlimit limits); servers at once come from the policy.
from hub_config.local.spawner import LocalPlatformSpawner
from hub_config.spawner import TierLocalSpawnerMixin


class TierLocalPlatformSpawner(TierLocalSpawnerMixin, LocalPlatformSpawner):
    """The local platform's spawner under the tier policy."""


c.JupyterHub.spawner_class = TierLocalPlatformSpawner
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 0  # TierSpawnerMixin enforces the tier's limit
c.LocalPlatformSpawner.users_dir = settings.singleuser.users_dir
c.LocalPlatformSpawner.allow_root = settings.singleuser.allow_root
c.Spawner.cmd = settings.singleuser.cmd
c.Spawner.default_url = settings.singleuser.default_url
c.Spawner.start_timeout = settings.singleuser.start_timeout
c.Spawner.http_timeout = settings.singleuser.http_timeout
# Spawns are limited, and the rest answered 429 + Retry-After (the spawn page and clients retry):
# on 2 cores 16 spawns at once all missed the 60 s http_timeout, 8 at once all started (p50
# 34 s); benchmarks/platform/load.py measures it (docs/capacity.md).
c.JupyterHub.concurrent_spawn_limit = 6
c.Spawner.environment = dict(settings.singleuser.environment)
# The server's own token may reach the gateway as this user and read the user's groups (tier,
# teams): exactly what Gateway() inside a notebook needs, nothing more.
c.Spawner.server_token_scopes = [
    "users:activity!user",
    "access:servers!server",
    "read:users:groups!user",
    f"access:services!service={settings.gateway.service_name}",
]

# ============================================================================ SERVICES
# The gateway is an external service: the hub knows its token, it is started before the hub.
c.JupyterHub.services = [
    {
        "name": settings.gateway.service_name,
        "api_token": settings.gateway.api_token,
        "display": False,
    },
]
c.JupyterHub.load_roles = [
    {
        # Users' own tokens (e.g. from the token page) may use the gateway too.
        "name": "user",
        "scopes": ["self", f"access:services!service={settings.gateway.service_name}"],
    },
]

# ============================================================================ QUOTA (issue 5)
# The quota service (hub-managed) and its enforcement hooks are wired here.
# The hub-managed quota service at /services/quota/ (hub_config/quota/hub.py registers it, its
# role and the custom:quota:admin scope), the quota check before every spawn, and the service URL
# for notebooks (platform_lib.account). Its database defaults to <state>/quota.sqlite; a YAML file
# named by $ROMAN_QUOTA_SETTINGS (hub_config/quota/settings.py) overrides any quota setting.
from hub_config.quota.hub import JUPYTER_CONFIG_DIR as _QUOTA_JUPYTER_CONFIG
from hub_config.quota.hub import JUPYTER_DATA_DIR as _QUOTA_JUPYTER_DATA
from hub_config.quota.hub import configure_hub as _quota_configure_hub
from hub_config.quota.hub import free_loopback_port
from hub_config.quota.services.enforcement import spawn_check as _quota_spawn_check

_quota_db = (
    os.environ.get(env_contract.QUOTA_DB_URL) or f"sqlite:///{settings.state_dir}/quota.sqlite"
)
_quota_env = {env_contract.POLICY_FILE: os.environ.get(env_contract.POLICY_FILE, "")}
if os.environ.get(env_contract.QUOTA_SETTINGS):
    _quota_env[env_contract.QUOTA_SETTINGS] = os.environ[env_contract.QUOTA_SETTINGS]
_quota_configure_hub(
    c,
    port=free_loopback_port(),
    db_url=_quota_db,
    env={k: v for k, v in _quota_env.items() if v},
    extra_args=[
        "--gateway-db-url",
        settings.gateway.db_url,
        "--gateway-url",
        settings.gateway.address,
        "--homes-dir",
        settings.singleuser.users_dir,
    ],
)
os.environ[env_contract.QUOTA_DB_URL] = _quota_db  # the spawner's check reads the same database
if _oidc and _oidc.get("users_file"):  # the demo accounts' teams exist, so their form options work
    from hub_config.quota.services.demo import seed_demo_teams

    seed_demo_teams(_quota_db, _oidc["users_file"])
c.TierSpawnerMixin.spawn_checks = [_quota_spawn_check]
# Tier grants made in the quota service reach the authenticator at each login.
from hub_config.quota.services.grants import DatabaseTierGrants as _QuotaTierGrants

c.RomanOIDCAuthenticator.tier_grants = _QuotaTierGrants(_quota_db)
c.Spawner.environment = {
    **dict(c.Spawner.environment),
    env_contract.QUOTA_URL: settings.hub.public_url.rstrip("/") + "/services/quota/",
    # enables platform_lib.account_extension (<server>/roman/account) in local user servers
    "JUPYTER_CONFIG_PATH": _QUOTA_JUPYTER_CONFIG,
    # the prebuilt JupyterLab status-bar item (tier, core-hours left, renewal date)
    "JUPYTER_PATH": _QUOTA_JUPYTER_DATA,
}

# ============================================================================ KUBERNETES (issue 6)
# Keep this section last. In the chart, the proxy, the quota service, the gateway and the culler
# run as their own pods and servers are KubeSpawner pods shaped by the tier policy:
# hub_config/chart_values.py replaces what the sections above set for one machine.
if settings.mode == "kubernetes":
    chart_values.configure_kubernetes(c)
