"""Request bodies of the quota API: validated with pydantic, and the source of the OpenAPI document.

The same models parse HTML form posts (strings coerced), so pages and API share one validation.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Username = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9._@-]{0,62}$")
Hours = Field(default=None, ge=0, le=1e9, allow_inf_nan=False)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class MemberIn(_Body):
    username: str = Username
    role: Literal["member", "admin"] = "member"


class CapIn(_Body):
    core_hours: float | None = Hours
    gpu_hours: float | None = Hours


class TeamIn(_Body):
    name: str = Field(min_length=1, max_length=41, pattern=r"^[a-z][a-z0-9-]{0,40}$")
    description: str = Field(default="", max_length=500)


class AllocationIn(_Body):
    user: str | None = Field(default=None, max_length=63)
    team: str | None = Field(default=None, max_length=41)
    core_hours: float = Field(ge=0, le=1e9, allow_inf_nan=False)
    gpu_hours: float = Field(default=0, ge=0, le=1e9, allow_inf_nan=False)
    home_gb: float = Field(default=0, ge=0, le=1e7, allow_inf_nan=False)
    scratch_gb: float = Field(default=0, ge=0, le=1e8, allow_inf_nan=False)
    period_start: dt.datetime | None = None
    period_end: dt.datetime


class GrantIn(_Body):
    tier: str = Field(min_length=1, max_length=32)
    expires_at: dt.datetime | None = None


class RequestIn(_Body):
    kind: Literal["tier", "renewal", "join"]
    justification: str = Field(min_length=1, max_length=4000)
    tier: str | None = Field(default=None, max_length=32)
    team: str | None = Field(default=None, max_length=41)


class DecisionIn(_Body):
    approve: bool
    note: str = Field(default="", max_length=1000)


class SpawnCheckIn(_Body):
    profile: str = Field(min_length=1, max_length=32)
    team: str | None = Field(default=None, max_length=41)
