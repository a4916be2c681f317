"""The quota API's typed bodies and replies: pydantic models, the source of the OpenAPI document.

The request models also parse HTML form posts (strings coerced), so pages and API share one
validation; the response models (below) are what every JSON reply is serialized through.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

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


# --------------------------------------------------------------------------- responses
# What the API returns, as typed models: the handlers serialize every reply through them
# (``extra="forbid"``: a service that returns a key no model names is a loud 500 in the tests,
# not a silently wrong OpenAPI document), and the OpenAPI document describes them.
class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Reason(_Out):
    """Every refusal: the HTTP status and why."""

    status: int
    reason: str


class TeamOut(_Out):
    name: str
    description: str


class MemberOut(_Out):
    role: Literal["member", "admin"]


class InviteOut(_Out):
    invited: str
    request: int
    state: str


class RemovedOut(_Out):
    removed: str


class RevokedOut(_Out):
    revoked: str


class CapOut(_Out):
    cap_core_hours: float | None
    cap_gpu_hours: float | None


class GrantOut(_Out):
    tier: str
    expires_at: str | None


class AllocationOut(_Out):
    id: int
    user: str | None
    team: str | None
    core_hours: float
    gpu_hours: float
    home_gb: float
    scratch_gb: float
    period_start: str | None
    period_end: str | None
    state: str
    used_core_hours: float | None = None
    used_gpu_hours: float | None = None
    remaining_core_hours: float | None = None
    remaining_gpu_hours: float | None = None


class RequestOut(_Out):
    id: int
    kind: str
    requester: str
    tier: str | None
    team: str | None
    allocation_id: int | None
    justification: str
    state: str
    created: str | None
    decided_by: str | None
    decided_at: str | None
    note: str | None


class UsageRow(_Out):
    user: str
    team: str | None
    core_hours: float
    gpu_hours: float


class AuditOut(_Out):
    at: str | None
    actor: str
    action: str
    target: str
    before: Any = None
    after: Any = None


class SpawnCheckOut(_Out):
    ok: bool
    team: str | None
    allocation_id: int | None


class ProfileCost(_Out):
    display_name: str
    core_hours_per_hour: float
    gpu_hours_per_hour: float


class UsagePoint(_Out):
    t: str
    core_hours: float
    gpu_hours: float
    cumulative_core_hours: float
    cumulative_gpu_hours: float


class TierGrantOut(_Out):
    tier: str
    expires_at: str | None
    granted_by: str


class MyTeamOut(_Out):
    name: str
    role: str
    cap_core_hours: float | None
    cap_gpu_hours: float | None
    allocation: AllocationOut | None


class WarningOut(_Out):
    reason: str
    stop_after: str | None
    stopped_at: str | None


class StorageOut(_Out):
    home_used_gb: float
    home_allocated_gb: float | None
    files: int
    complete: bool
    measured_at: str
    over_allocation: bool


class MeOut(_Out):
    name: str
    tier: str
    platform_admin: bool
    tier_grant: TierGrantOut | None
    allocation: AllocationOut | None
    teams: list[MyTeamOut]
    usage: list[UsagePoint]
    profile_costs: dict[str, ProfileCost]
    requests: list[RequestOut]
    warnings: list[WarningOut]
    storage: StorageOut | None


class TeamMemberOut(_Out):
    name: str
    role: str
    cap_core_hours: float | None
    cap_gpu_hours: float | None
    used_core_hours: float
    used_gpu_hours: float


class TeamViewOut(_Out):
    name: str
    description: str
    can_admin: bool
    allocation: AllocationOut | None
    usage: list[UsagePoint]
    members: list[TeamMemberOut] | None = None  # for the team's admins
    requests: list[RequestOut] | None = None  # for the team's admins
