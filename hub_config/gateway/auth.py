"""Dask-Gateway's JupyterHub authenticator, with a forged or revoked token answered by 401.

dask-gateway-server 2026.3 maps every 403 from the hub to "500 Permission failure verifying
user's JupyterHub API token". JupyterHub answers 403 on ``/hub/api/user`` when the token is
unknown, expired or revoked, so a bad credential looked like a server fault. This subclass turns
exactly that case into the 401 a client expects; every other answer is the upstream behaviour.
The one-machine platform uses it (hub_config.gateway.local); the chart runs the upstream class.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from dask_gateway_server.auth import JupyterHubAuthenticator, unauthorized


class HubTokenAuthenticator(JupyterHubAuthenticator):
    """JupyterHubAuthenticator that reports an invalid hub token as 401, not 500."""

    async def authenticate(self, request: web.Request) -> Any:
        try:
            return await super().authenticate(request)
        except web.HTTPInternalServerError as exc:
            if exc.reason and exc.reason.startswith("Permission failure"):
                self.log.info("rejected a hub token the hub does not accept")
                raise unauthorized("jupyterhub") from None
            raise
