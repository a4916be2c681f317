"""The quota database: one typed SQLAlchemy 2 model per record the allocation system keeps.

Times are stored as naive UTC datetimes so SQLite and PostgreSQL compare them identically.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    """Naive UTC now: the one clock every row uses."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Role(str, enum.Enum):
    member = "member"
    admin = "admin"


class AllocationState(str, enum.Enum):
    active = "active"
    renewal_requested = "renewal_requested"
    expired = "expired"


class RequestKind(str, enum.Enum):
    tier = "tier"
    renewal = "renewal"
    join = "join"  # type: ignore[assignment]  # shadows str.join; the stored name. A user asks to join a team; the team's admins decide
    invite = "invite"  # a team admin invites a user (the requester row); that user decides


class RequestState(str, enum.Enum):
    pending = "pending"
    approved = "approved"
    declined = "declined"


def _enum(e: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings with a CHECK, so a new value needs only a migration, not a PG type.
    return Enum(e, name=name, native_enum=False, validate_strings=True, length=32)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    memberships: Mapped[list[Membership]] = relationship(back_populates="user")


class TierGrant(Base):
    """A tier given to a user by a platform admin (or an approved request); newest live one wins."""

    __tablename__ = "tier_grants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    tier: Mapped[str] = mapped_column(String(64))
    granted_by: Mapped[str] = mapped_column(String(255))
    granted_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    user: Mapped[User] = relationship()


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    memberships: Mapped[list[Membership]] = relationship(
        back_populates="team", cascade="all, delete-orphan"
    )


class Membership(Base):
    """A user in a team; caps bound what one member may draw from the team's allocation."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("team_id", "user_id", name="uq_membership"),
        CheckConstraint("cap_core_hours IS NULL OR cap_core_hours >= 0", name="ck_cap_core"),
        CheckConstraint("cap_gpu_hours IS NULL OR cap_gpu_hours >= 0", name="ck_cap_gpu"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), default=Role.member)
    cap_core_hours: Mapped[float | None] = mapped_column(Float, nullable=True)
    cap_gpu_hours: Mapped[float | None] = mapped_column(Float, nullable=True)
    team: Mapped[Team] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship(back_populates="memberships")


class Allocation(Base):
    """Resources for one period, owned by exactly one user or one team."""

    __tablename__ = "allocations"
    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (team_id IS NULL)", name="ck_allocation_one_owner"),
        CheckConstraint(
            "core_hours >= 0 AND gpu_hours >= 0 AND home_gb >= 0 AND scratch_gb >= 0",
            name="ck_allocation_nonnegative",
        ),
        CheckConstraint("period_end > period_start", name="ck_allocation_period"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    )
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), nullable=True, index=True
    )
    core_hours: Mapped[float] = mapped_column(Float, default=0.0)
    gpu_hours: Mapped[float] = mapped_column(Float, default=0.0)
    home_gb: Mapped[float] = mapped_column(Float, default=0.0)
    scratch_gb: Mapped[float] = mapped_column(Float, default=0.0)
    period_start: Mapped[dt.datetime] = mapped_column(DateTime)
    period_end: Mapped[dt.datetime] = mapped_column(DateTime)
    state: Mapped[AllocationState] = mapped_column(
        _enum(AllocationState, "allocation_state"), default=AllocationState.active
    )
    created_by: Mapped[str] = mapped_column(String(255), default="")
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    user: Mapped[User | None] = relationship()
    team: Mapped[Team | None] = relationship()


class Request(Base):
    """A tier or renewal request: the helpdesk ticket replaced by a record both sides can see."""

    __tablename__ = "requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[RequestKind] = mapped_column(_enum(RequestKind, "request_kind"))
    requester: Mapped[str] = mapped_column(String(255), index=True)
    tier: Mapped[str | None] = mapped_column(String(64), nullable=True)
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), nullable=True
    )
    allocation_id: Mapped[int | None] = mapped_column(
        ForeignKey("allocations.id", ondelete="CASCADE"), nullable=True
    )
    justification: Mapped[str] = mapped_column(Text)
    state: Mapped[RequestState] = mapped_column(
        _enum(RequestState, "request_state"), default=RequestState.pending
    )
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    decision_note: Mapped[str] = mapped_column(String(1000), default="")
    team: Mapped[Team | None] = relationship()


class UsageRecord(Base):
    """One contiguous stretch of one running thing's use, never crossing an hour boundary.

    Keeping stretches (not per-sample rows) keeps the ledger small; cutting at the hour lets
    period sums and the usage plot be exact to the hour without re-reading samples.
    """

    __tablename__ = "usage"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(300), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # server | scheduler | worker
    username: Mapped[str] = mapped_column(String(255), index=True)
    team: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    start: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    end: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    cores: Mapped[float] = mapped_column(Float)
    gpus: Mapped[float] = mapped_column(Float)
    core_hours: Mapped[float] = mapped_column(Float)
    gpu_hours: Mapped[float] = mapped_column(Float)


class Checkpoint(Base):
    """The last sighting of one running thing: what lets the sampler resume without gaps."""

    __tablename__ = "sampler_checkpoints"
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    username: Mapped[str] = mapped_column(String(255))
    team: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cores: Mapped[float] = mapped_column(Float)
    gpus: Mapped[float] = mapped_column(Float)
    started: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime)


class SamplerState(Base):
    """Per source: the time up to which everything it reported has been charged."""

    __tablename__ = "sampler_state"
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    watermark: Mapped[dt.datetime] = mapped_column(DateTime)


class Warning_(Base):
    """An exhaustion warning sent to a user, and when their running things must stop."""

    __tablename__ = "grace_warnings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), index=True)
    team: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(String(500))
    warned_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    stop_after: Mapped[dt.datetime] = mapped_column(DateTime)
    stopped_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    cleared_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255), index=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(300))
    before: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class StorageUsage(Base):
    """The last measurement of one user's home folder (the local platform's storage sampler).

    One row per user, replaced at each pass: storage is a level, not a flow, so there is nothing
    to integrate. ``complete`` is false when the walk hit its time or entry bound, and
    ``home_bytes`` then counts only what was reached (a lower bound).
    """

    __tablename__ = "storage_usage"
    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    home_bytes: Mapped[int] = mapped_column(BigInteger)
    files: Mapped[int] = mapped_column(Integer)
    complete: Mapped[bool] = mapped_column(Boolean)
    measured_at: Mapped[dt.datetime] = mapped_column(DateTime)
