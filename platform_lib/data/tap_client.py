"""The platform's TAP service from a notebook: pyvo with the server's hub token, L5 registration.

``ROMAN_TAP_URL`` is the hub-facing TAP endpoint (``<hub>/services/tap``) and
``JUPYTERHUB_API_TOKEN`` the server's hub token; the service (:mod:`hub_config.tap.proxy`)
asks the hub who that is, so what a query returns is the user's view (public rows, the user's own
and the user's teams' L5 rows) and an L5 product registers under the authenticated user::

    from platform_lib.data.tap_client import tap_service, HubTapRegistry
    rows = tap_service().search("SELECT * FROM ivoa.obscore WHERE ...").to_table()
    l5.publish(table, "my-cat", licence="CC-BY-4.0", schema=..., registry=HubTapRegistry())
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["HubTapRegistry", "TapClientError", "tap_service", "tap_session"]

from platform_lib.env_contract import TAP_URL as URL_ENV

TOKEN_ENV = "JUPYTERHUB_API_TOKEN"


class TapClientError(RuntimeError):
    """The TAP service refused a request or is not configured; the message says why."""


def _url(url: str | None) -> str:
    url = url or os.environ.get(URL_ENV)
    if not url:
        raise TapClientError(f"no TAP service: pass url= or set {URL_ENV}")
    return url.rstrip("/")


def tap_session(token: str | None = None, *, anonymous: bool = False):
    """A requests session carrying the hub token (none if ``anonymous``: public rows only)."""
    import requests

    session = requests.Session()
    if not anonymous:
        token = token or os.environ.get(TOKEN_ENV)
        if not token:
            raise TapClientError(f"no hub token: pass token= or set {TOKEN_ENV}")
        session.headers["Authorization"] = f"token {token}"
    return session


def tap_service(url: str | None = None, token: str | None = None, *, anonymous: bool = False):
    """A ``pyvo.dal.TAPService`` on the platform's TAP endpoint as the hub user of ``token``."""
    import pyvo

    return pyvo.dal.TAPService(_url(url), session=tap_session(token, anonymous=anonymous))


class HubTapRegistry:
    """An L5 ``registry`` (:func:`platform_lib.data.l5.publish`) that registers via the service.

    The service sets the owner from the token; ``owner_name`` in the row is only a claim it checks.
    """

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 60):
        self.url = _url(url)
        self.session = tap_session(token)
        self.timeout = timeout

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.session.post(f"{self.url}/roman/{path}", json=body, timeout=self.timeout)
        try:
            answer = r.json()
        except ValueError:
            answer = {"message": r.text[:500]}
        if r.status_code >= 400:
            raise TapClientError(f"TAP service refused ({r.status_code}): {answer.get('message')}")
        return answer

    def add_product(self, row: dict[str, Any]) -> dict[str, Any]:
        return self._post("l5", {"row": _jsonable(row)})

    def remove_product(self, did: str, *, by: str = "", admin: bool = False, reason: str = ""):
        # by/admin are decided by the service from the token; they are not sent
        return self._post("l5/remove", {"obs_publisher_did": did, "reason": reason})


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if hasattr(v, "item"):  # numpy scalars
            v = v.item()
        out[k] = v
    return out
