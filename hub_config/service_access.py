"""Which tokens may reach a hub service: one rule for every service and both set-ups.

A service that asks the hub who a token belongs to (``HubAuth``: the quota service, the TAP
proxy, the gateway's authenticator) sees a user only when the token holds
``access:services!service=<name>``. Users' own tokens get it through the ``user`` role, and every
server's token through ``Spawner.server_token_scopes``; the user's groups come with it through the
server token's ``read:users:groups!user`` (``modes.common.configure_spawner``). Neutral: the
one-machine set-up (``local.tap_platform``) and the mode modules both use it.
"""

from __future__ import annotations

from typing import Any


def grant_service_access(c: Any, name: str) -> None:
    """Every user (their own tokens) and every server's token may reach the hub service ``name``.

    An unset ``server_token_scopes`` means JupyterHub's defaults; it is left alone rather than
    replaced by this one scope (the spawner configuration sets the list first)."""
    access = f"access:services!service={name}"
    roles = [dict(r) for r in c.JupyterHub.load_roles] if "load_roles" in c.JupyterHub else []
    user_role = next((r for r in roles if r.get("name") == "user"), None)
    if user_role is None:
        roles.append({"name": "user", "scopes": ["self", access]})
    elif access not in user_role.get("scopes", []):
        user_role["scopes"] = [*user_role.get("scopes", []), access]
    c.JupyterHub.load_roles = roles
    scopes = list(c.Spawner.server_token_scopes) if "server_token_scopes" in c.Spawner else []
    if scopes and access not in scopes:
        c.Spawner.server_token_scopes = [*scopes, access]
