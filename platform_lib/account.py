"""Your tier, teams and remaining allocation, from inside a notebook (or any script).

Talks to the quota service (``$ROMAN_QUOTA_URL``, set by the hub in every user server) with the
server's own hub token (``$JUPYTERHUB_API_TOKEN``); the service decides what you may see.

    >>> from platform_lib import account
    >>> a = account.account()
    >>> a.tier, a.remaining_core_hours, a.renewal_date
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from typing import Any

import requests

URL_ENV = "ROMAN_QUOTA_URL"
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


@dataclass
class Account:
    """What the status bar shows: tier, what is left, when it renews, and any warning."""

    name: str
    tier: str
    remaining_core_hours: float | None
    remaining_gpu_hours: float | None
    renewal_date: dt.datetime | None
    teams: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    raw: dict = field(default_factory=dict, repr=False)

    def summary(self) -> str:
        left = (
            "no allocation"
            if self.remaining_core_hours is None
            else f"{self.remaining_core_hours:.1f} core-h left"
        )
        until = f" until {self.renewal_date:%Y-%m-%d}" if self.renewal_date else ""
        teams = f" · teams: {', '.join(t['name'] for t in self.teams)}" if self.teams else ""
        warn = f" · WARNING: {self.warnings[0]}" if self.warnings else ""
        return f"{self.name} · tier {self.tier} · {left}{until}{teams}{warn}"


def _date(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def account(client: QuotaClient | None = None) -> Account:
    """Your account now (one call to the quota service)."""
    me = (client or QuotaClient()).get("api/me")
    a = me.get("allocation") or {}
    return Account(
        name=me["name"],
        tier=me["tier"],
        remaining_core_hours=a.get("remaining_core_hours"),
        remaining_gpu_hours=a.get("remaining_gpu_hours"),
        renewal_date=_date(a.get("period_end")),
        teams=me.get("teams", []),
        warnings=[w["reason"] for w in me.get("warnings", [])],
        raw=me,
    )


def tier() -> str:
    return account().tier


def teams() -> list[str]:
    return [t["name"] for t in account().teams]


def remaining() -> dict[str, float | None]:
    """Remaining core- and GPU-hours of your personal allocation and of each of your teams."""
    a = account()
    out: dict[str, float | None] = {"personal": a.remaining_core_hours}
    for t in a.teams:
        out[f"team {t['name']}"] = (t.get("allocation") or {}).get("remaining_core_hours")
    return out
