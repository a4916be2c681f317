"""The one Dask-Gateway API call the quota service makes: stopping a user's cluster."""

from __future__ import annotations

from hub_config.quota.storage.hubapi import HubClient


class GatewayStopper:
    """Stops a user's Dask cluster through the gateway API with a short-lived token of theirs.

    The gateway authenticates through the hub and lets users stop only their own clusters, so
    the service asks the hub (it holds the ``tokens`` scope) for a five-minute token of the user.
    """

    def __init__(self, hub: HubClient, gateway_url: str):
        self.hub, self.url = hub, gateway_url.rstrip("/")

    def stop(self, user: str, cluster: str) -> None:
        import requests

        token = self.hub.user_token(user, note="quota grace-period stop", expires_in=300)
        r = requests.delete(
            f"{self.url}/api/v1/clusters/{cluster}",
            headers={"Authorization": f"jupyterhub {token}"},
            timeout=30,
        )
        if r.status_code not in (200, 204, 404):
            raise RuntimeError(f"gateway refused to stop {cluster}: {r.status_code} {r.text[:200]}")
