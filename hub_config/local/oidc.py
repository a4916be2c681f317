"""The development OIDC provider as a component of the local platform (``roman-platform up``).

The supervisor calls :func:`oidc_component` before the gateway and the hub. It picks a loopback
port, writes the provider's users file (the tier demo accounts of ``demo_users.yaml`` plus the
platform's configured demo logins, which become Entry users and platform admins with the
configured demo password), keeps the client secret and the signing key in the state folder, and
adds an ``oidc`` section to the settings that ``jupyterhub_config.py`` hands to
:func:`hub_config.auth.configure_oidc`.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from hub_config.oidc_dev.users import load_users
from hub_config.processes import ManagedProcess, free_port, http_ready

CLIENT_ID = "roman-hub"


def users_document(
    platform_users: list[str], admin_users: list[str], password: str
) -> dict[str, Any]:
    """The tier demo accounts plus the platform's own demo logins, as a users file."""
    users = [u.model_dump(exclude_none=True) for u in load_users().values()]
    taken = {u["username"] for u in users}
    for name in platform_users:
        if name not in taken:
            users.append(
                {
                    "username": name,
                    "password": password,
                    "groups": [],
                    "note": "Entry tier (platform.yaml demo user)",
                }
            )
    for name in admin_users:
        if name not in taken:
            users.append(
                {
                    "username": name,
                    "password": password,
                    "groups": ["roman-platform-admins"],
                    "note": "platform admin (platform.yaml demo admin)",
                }
            )
    return {"users": users}


def oidc_component(p: Any) -> Any:
    """Supervisor factory: the provider process, and the hub's ``oidc`` settings section."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    public = p.settings.hub.public_url.rstrip("/")
    folder = p.state.root / "oidc"
    folder.mkdir(mode=0o700, exist_ok=True)
    secret = p.state.secret("oidc_client_secret")
    secret_file = p.state.secrets_dir / "oidc_client_secret"
    demo = p.settings.demo
    users_file = folder / "users.yaml"
    users_file.write_text(
        yaml.safe_dump(users_document(list(demo.users), list(demo.admin_users), demo.password))
    )
    users_file.chmod(0o600)
    p.settings.oidc = {
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "client_secret": secret,
        "callback_url": f"{public}/hub/oauth_callback",
        "post_logout_redirect_uri": f"{public}/hub/login",
        "crypt_key": p.state.secret("jupyterhub_crypt_key"),
        "users_file": str(users_file),
        "auto_login": True,
    }
    argv = [
        sys.executable,
        "-m",
        "hub_config.oidc_dev",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--issuer",
        issuer,
        "--users",
        str(users_file),
        "--client-id",
        CLIENT_ID,
        "--client-secret-file",
        str(secret_file),
        "--redirect-uri",
        f"{public}/hub/oauth_callback",
        "--post-logout-redirect-uri",
        f"{public}/hub/login",
        "--state-dir",
        str(folder),
    ]
    return ManagedProcess(
        "oidc-provider",
        argv,
        env=p.child_env(),
        cwd=folder,
        log_file=p.log_file("oidc-provider"),
        ready=http_ready(f"{issuer}/.well-known/openid-configuration"),
    )


def demo_logins(users_file: str) -> list[tuple[str, str, str]]:
    """(login, password, what) for the banner of ``roman-platform up``."""
    return [(u.username, u.password, u.note) for u in load_users(users_file).values()]
