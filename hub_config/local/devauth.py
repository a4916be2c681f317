"""A development authenticator for the local platform: fixed demo logins, loopback only.

It exists so the local platform works before (and without) an OIDC provider, and it must never
guard a real deployment: it refuses to start unless the hub's public URL is on the loopback
interface, and hub_config/jupyterhub_config.py only selects it in local mode. The password is
compared in constant time; only the configured demo users and admins can log in.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlparse

from jupyterhub.auth import Authenticator
from traitlets import Unicode


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DemoAuthenticator(Authenticator):
    """Username + one shared demo password, for the listed demo users only."""

    demo_password = Unicode(config=True, help="The shared demo password (min. 8 characters).")
    public_url = Unicode(
        config=True, help="The URL users open; must be loopback (default: the hub's bind_url)."
    )

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        bind_url = self.public_url or getattr(self.parent, "bind_url", "") or ""
        if bind_url and not _is_loopback(bind_url):
            raise ValueError(
                f"DemoAuthenticator is for the local platform only; refusing to serve {bind_url} "
                "(configure the OIDC authenticator for a real deployment)"
            )
        if len(self.demo_password) < 8:
            raise ValueError("DemoAuthenticator.demo_password must be at least 8 characters")

    async def authenticate(self, handler, data):
        username = self.normalize_username(str(data.get("username", "")))
        password = str(data.get("password", ""))
        if not hmac.compare_digest(password.encode(), self.demo_password.encode()):
            self.log.warning("demo login failed for %r: wrong password", username)
            return None
        if username not in self.allowed_users and username not in self.admin_users:
            self.log.warning("demo login refused for %r: not a demo user", username)
            return None
        return username
