"""Your tier, teams and remaining allocation, from inside a notebook (or any script).

Talks to the quota service (``$ROMAN_QUOTA_URL``, set by the hub in every user server) with the
server's own hub token (``$JUPYTERHUB_API_TOKEN``); the service decides what you may see.

    >>> from platform_lib import account
    >>> a = account.account()
    >>> a.tier, a.remaining_core_hours, a.renewal_date
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from platform_lib.quota_client import TOKEN_ENV, URL_ENV, AccountError, QuotaClient

__all__ = [
    "TOKEN_ENV",
    "URL_ENV",
    "Account",
    "AccountError",
    "QuotaClient",
    "account",
    "remaining",
    "teams",
    "tier",
]


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
