"""A credential in front of a Dask-Gateway scheduler's dashboard (``--preload`` of the scheduler).

dask-gateway routes ``/clusters/<name>/`` on its public proxy straight to the scheduler's
dashboard, and distributed's dashboard has no authentication (dask/dask-gateway#570), so anyone
who learns a cluster's name sees its task graph, worker logs and call stacks. This preload puts
a gate in the scheduler's own HTTP server, which works the same behind any backend (local,
Kubernetes) and also covers anyone who reaches the dashboard port directly.

The gate asks the gateway itself whether the credential presented may see this cluster
(``GET {DASK_GATEWAY_API_URL}/v1/clusters/<name>``): the gateway authenticates it (a hub token
through the hub) and lets only the cluster's owner see it. Accepted credentials, in the order
a client sends them:

* ``Authorization: jupyterhub <hub token>`` (or ``token``/``Bearer``), what dask-gateway's
  client and scripts send;
* ``?token=<hub token>`` in the URL, for opening the dashboard in a browser
  (:func:`dashboard_link` builds that link inside a user's server);
* the gateway's own ``dask-gateway`` login cookie, which a browser already has for the same
  address after using the gateway API.

A check that passes sets a session cookie (HMAC of the cluster name and an expiry, keyed with the
cluster's own API token, which only the gateway and this scheduler know), named after the
cluster, so the dashboard's pages, assets and websockets need no further round trip.
Everything else gets 401 (no credential) or 403 (someone else's cluster).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from tornado import httpclient, web

COOKIE = "roman-dask-dashboard"
SESSION_S = 8 * 3600
OPEN_PATHS = ("/health",)  # liveness probes carry no credential and learn nothing


def _sign(secret: str, cluster: str, expires: int) -> str:
    return hmac.new(secret.encode(), f"{cluster}|{expires}".encode(), hashlib.sha256).hexdigest()


def session_value(secret: str, cluster: str, now: float | None = None) -> str:
    expires = int((now or time.time()) + SESSION_S)
    return f"{expires}.{_sign(secret, cluster, expires)}"


def valid_session(value: str | None, secret: str, cluster: str, now: float | None = None) -> bool:
    if not value or "." not in value:
        return False
    expires_s, _, mac = value.partition(".")
    if not expires_s.isdigit() or int(expires_s) < (now or time.time()):
        return False
    return hmac.compare_digest(mac, _sign(secret, cluster, int(expires_s)))


def cookie_name(cluster: str) -> str:
    """One cookie per cluster, at path ``/``: the gateway's proxy strips ``/clusters/<name>``
    before the scheduler sees the request, so the scheduler cannot scope it by path."""
    return f"{COOKIE}-{cluster}"


class DashboardGate(web.RequestHandler):
    """Answers every dashboard request that carries no valid session cookie."""

    def initialize(self, api_url: str, cluster: str, secret: str) -> None:
        self.api_url, self.cluster, self.secret = api_url, cluster, secret

    def check_xsrf_cookie(self) -> None:  # the gate sets state only after the gateway agreed
        return

    def _credential(self) -> tuple[dict[str, str], bool]:
        """Headers for the gateway call, and whether the token came in the URL."""
        token = self.get_query_argument("token", None)
        if token:
            return {"Authorization": f"jupyterhub {token}"}, True
        auth = self.request.headers.get("Authorization", "")
        kind, _, value = auth.partition(" ")
        if value and kind.lower() in ("jupyterhub", "token", "bearer"):
            return {"Authorization": f"jupyterhub {value.strip()}"}, False
        cookie = self.get_cookie("dask-gateway")
        if cookie:
            return {"Cookie": f"dask-gateway={cookie}"}, False
        return {}, False

    async def _gate(self) -> None:
        headers, in_url = self._credential()
        if not headers:
            self.set_header("WWW-Authenticate", 'jupyterhub realm="dask dashboard"')
            self._refuse(
                401,
                "this Dask dashboard needs your hub token: open it with "
                "platform_lib.dashboard_auth.dashboard_link(cluster) from your server",
            )
            return
        url = f"{self.api_url.rstrip('/')}/v1/clusters/{self.cluster}"
        try:
            resp = await httpclient.AsyncHTTPClient().fetch(
                url, headers=headers, raise_error=False, request_timeout=15
            )
            code = resp.code
        except (OSError, httpclient.HTTPClientError):
            code = 599
        if code == 599:
            self._refuse(503, "cannot reach the gateway to check your credential; try again")
            return
        if code != 200:
            self._refuse(403, "this is not your Dask cluster (or your token is not valid)")
            return
        self.set_cookie(
            cookie_name(self.cluster),
            session_value(self.secret, self.cluster),
            httponly=True,
            samesite="Strict",
            path="/",
            expires_days=SESSION_S / 86400,
        )
        if in_url and self.request.method in ("GET", "HEAD"):
            # relative, because the browser's path has the proxy's /clusters/<name> in front
            rest = [(k, v) for k, v in parse_qsl(self.request.query) if k != "token"]
            here = self.request.path.rsplit("/", 1)[-1] or "./"
            self.redirect(here + (f"?{urlencode(rest)}" if rest else ""))
            return
        self._refuse(409, "credential accepted; repeat the request with the session cookie")

    def _refuse(self, status: int, reason: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(reason + "\n")

    get = head = post = put = delete = patch = options = _gate


def install(app: Any, api_url: str, cluster: str, secret: str) -> None:
    """Wrap ``app`` (the scheduler's tornado application) so every request passes the gate."""
    original = app.find_handler
    name = cookie_name(cluster)

    def find_handler(request: Any, **kwargs: Any) -> Any:
        morsel = request.cookies.get(name)
        if request.path.rstrip("/").endswith(OPEN_PATHS) or valid_session(
            morsel.value if morsel is not None else None, secret, cluster
        ):
            return original(request, **kwargs)
        return app.get_handler_delegate(
            request, DashboardGate, {"api_url": api_url, "cluster": cluster, "secret": secret}
        )

    app.find_handler = find_handler


def dask_setup(scheduler: Any) -> None:
    """distributed's preload hook: gate the dashboard when the scheduler runs under a gateway."""
    api_url = os.environ.get("DASK_GATEWAY_API_URL")
    cluster = os.environ.get("DASK_GATEWAY_CLUSTER_NAME")
    secret = os.environ.get("DASK_GATEWAY_API_TOKEN")
    if not (api_url and cluster and secret):
        raise RuntimeError(
            "platform_lib.dashboard_auth runs only in a Dask-Gateway scheduler "
            "(DASK_GATEWAY_API_URL/_CLUSTER_NAME/_API_TOKEN not set)"
        )
    install(scheduler.http_application, api_url, cluster, secret)


def dashboard_link(cluster: Any, token: str | None = None) -> str:
    """The cluster's dashboard URL with the user's hub token, to open in a browser once."""
    token = token or os.environ.get("JUPYTERHUB_API_TOKEN", "")
    link = cluster.dashboard_link
    return f"{link}{'&' if '?' in link else '?'}{urlencode({'token': token})}" if token else link
