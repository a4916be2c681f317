"""A thin JSON client for the quota service's API, shared by ``platform_lib.account`` (notebooks)
and ``roman-platform quota`` (operators, ``hub_config.quota.cli``).

A neutral module: it imports nothing of the platform (only ``requests``), so the hub side's CLI
and the notebook side's account view use one client without either importing the other.
"""

from __future__ import annotations

import os
from typing import Any

import requests

from .env_contract import QUOTA_URL

URL_ENV = QUOTA_URL
TOKEN_ENV = "JUPYTERHUB_API_TOKEN"


class AccountError(RuntimeError):
    """The quota service refused or could not be reached; ``status`` is the HTTP status (0: none)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class QuotaClient:
    """A thin JSON client for the quota service API (also used by ``roman-platform quota``)."""

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30):
        self.url = (url or os.environ.get(URL_ENV) or "").rstrip("/") + "/"
        token = token or os.environ.get(TOKEN_ENV)
        if self.url == "/":
            raise AccountError(f"no quota service URL: set {URL_ENV} or pass url=")
        if not token:
            raise AccountError(f"no hub token: set {TOKEN_ENV} or pass token=")
        self.timeout = timeout
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {token}"

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict | None = None,
        raw: bool = False,
    ) -> Any:
        try:
            r = self.http.request(
                method,
                self.url + path.lstrip("/"),
                json=body,
                params=params,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise AccountError(f"quota service unreachable at {self.url}: {exc}") from None
        if r.status_code >= 300:
            try:
                reason = r.json().get("reason", r.text)
            except ValueError:
                reason = r.text[:300] or r.reason
            raise AccountError(f"{method} {path}: {r.status_code} {reason}", r.status_code)
        if raw:
            return r.text
        return r.json() if r.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params={k: v for k, v in params.items() if v is not None})
