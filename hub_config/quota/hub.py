"""The hub side of the quota service: registers it with JupyterHub (called from jupyterhub_config.py).

One function so the local platform and the chart register the service identically: a hub-managed
service at /services/<name>/ with the API scopes it needs (read users and groups, manage tier
and team groups, stop servers, make short-lived user tokens to stop Dask clusters), the custom
``custom:quota:admin`` scope for platform admins, and the quota database URL in its environment.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from platform_lib import env_contract

#: The folder whose jupyter_server_config.d enables platform_lib.account_extension.
JUPYTER_CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "platform_lib" / "jupyter-config")
#: The folder whose labextensions/ holds the prebuilt status-bar extension (@roman-platform/account-status).
JUPYTER_DATA_DIR = str(Path(__file__).resolve().parents[2] / "platform_lib" / "jupyter-data")

SERVICE_SCOPES = [
    "list:users",
    "read:users",
    "read:users:groups",
    "read:servers",
    "servers",
    # The spawner's saved state (the local server's pid): a crashed server is closed in the
    # ledger at its last sighting, not at the hub's next poll (hub_config/quota/services/sampler.py).
    "admin:server_state",
    "admin:groups",
    "tokens",
]


def configure_hub(
    c: Any,
    *,
    port: int,
    db_url: str,
    name: str = "quota",
    managed: bool = True,
    admin_group: str = "roman-platform-admins",
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Add the quota service, its role and the admin scope to a JupyterHub config object ``c``."""
    service: dict[str, Any] = {
        "name": name,
        "url": f"http://127.0.0.1:{port}",
        "oauth_no_confirm": True,
        "display": True,
        "oauth_client_allowed_scopes": ["custom:quota:admin"],
    }
    if managed:
        service["command"] = [sys.executable, "-m", "hub_config.quota.service", *(extra_args or [])]
        service["environment"] = {env_contract.QUOTA_DB_URL: db_url, **(env or {})}
    services = list(c.JupyterHub.services or []) if "services" in c.JupyterHub else []
    c.JupyterHub.services = [s for s in services if s.get("name") != name] + [service]
    scopes = dict(c.JupyterHub.custom_scopes) if "custom_scopes" in c.JupyterHub else {}
    scopes["custom:quota:admin"] = {
        "description": "Administer tiers, teams and allocations in the quota service"
    }
    c.JupyterHub.custom_scopes = scopes
    roles = [dict(r) for r in c.JupyterHub.load_roles] if "load_roles" in c.JupyterHub else []
    # Every user may reach the service (pages, and their own tokens from the CLI/notebooks).
    access = f"access:services!service={name}"
    user_role = next((r for r in roles if r.get("name") == "user"), None)
    if user_role is None:
        roles.append({"name": "user", "scopes": ["self", access]})
    elif access not in user_role.get("scopes", []):
        user_role["scopes"] = [*user_role.get("scopes", []), access]
    if "server_token_scopes" in c.Spawner:
        c.Spawner.server_token_scopes = [*c.Spawner.server_token_scopes, access]
    roles.append({"name": f"{name}-service", "scopes": SERVICE_SCOPES, "services": [name]})
    roles.append(
        {"name": f"{name}-admin", "scopes": ["custom:quota:admin"], "groups": [admin_group]}
    )
    c.JupyterHub.load_roles = roles


def free_loopback_port() -> int:
    """A free port on 127.0.0.1 for the service (the hub tells the service which one)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
