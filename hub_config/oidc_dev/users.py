"""Demo accounts of the development provider (one per tier, a team admin, a platform admin)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEMO_USERS_FILE = Path(__file__).with_name("demo_users.yaml")


class DemoUser(BaseModel):
    """One account: login name, password and the claims the provider asserts about it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    password: str = Field(min_length=4)
    name: str = ""
    email: str = ""
    groups: list[str] = Field(default_factory=list)
    roman_tier: str | None = None
    note: str = Field(default="", description="What this demo account is for (printed by `up`)")

    @property
    def sub(self) -> str:
        # A stable opaque subject, as real providers issue, distinct from the login name.
        return f"myst-dev|{self.username}"

    def claims(self) -> dict[str, object]:
        out: dict[str, object] = {
            "sub": self.sub,
            "preferred_username": self.username,
            "name": self.name or self.username,
            "email": self.email or f"{self.username}@myst.example.invalid",
            "email_verified": True,
            "groups": list(self.groups),
        }
        if self.roman_tier:
            out["roman_tier"] = self.roman_tier
        return out


class _UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    users: list[DemoUser] = Field(min_length=1)


def load_users(path: str | Path | None = None) -> dict[str, DemoUser]:
    """Read and validate a users file; raises ValueError naming the bad field."""
    path = Path(path or DEMO_USERS_FILE)
    try:
        parsed = _UsersFile.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read users file {path}: {exc}") from None
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"invalid users file {path}: {msgs}") from None
    users = {u.username: u for u in parsed.users}
    if len(users) != len(parsed.users):
        raise ValueError(f"invalid users file {path}: duplicate usernames")
    return users
