"""``platform.yaml``: the one optional configuration file of the local platform.

Every setting has a default that works on a fresh machine, so the file is only needed to change
something (ports, demo logins, where user data lives). The file is validated when it is loaded:
an unknown key or a wrong type is reported as ONE line naming the file and the dotted field path,
because a typo that silently falls back to a default is worse than a refusal to start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

#: Looked up in the current folder when no ``--config`` is given (absent is fine).
DEFAULT_CONFIG_NAME = "platform.yaml"

Port = Annotated[
    int, Field(ge=0, le=65535, description="TCP port on 127.0.0.1; 0 picks a free one")
]
Username = Annotated[str, Field(pattern=r"^[a-z][a-z0-9._-]{0,31}$")]


class ConfigError(ValueError):
    """platform.yaml is unreadable or invalid; ``str()`` is a single line naming the field."""


class _Strict(BaseModel):
    # Unknown keys are errors: 'prots:' must not silently mean "default ports".
    model_config = ConfigDict(extra="forbid")


class PortsConfig(_Strict):
    """Every port the platform listens on (all on 127.0.0.1)."""

    http: Port = Field(8000, description="Public URL of the platform (configurable-http-proxy)")
    proxy_api: Port = Field(8001, description="configurable-http-proxy's REST API (hub only)")
    hub: Port = Field(8081, description="The hub's own HTTP server (API for services, spawners)")
    gateway: Port = Field(8010, description="Dask-Gateway HTTP API (DASK_GATEWAY__ADDRESS)")
    gateway_scheduler: Port = Field(
        8011, description="Dask-Gateway scheduler proxy (DASK_GATEWAY__PROXY_ADDRESS)"
    )
    gateway_private: Port = Field(
        0, description="Dask-Gateway's private API that schedulers report to (0: any free port)"
    )


class DemoConfig(_Strict):
    """Logins of the development authenticator (replaced by the OIDC login in production)."""

    users: list[Username] = Field(default_factory=lambda: ["alice", "bob"], min_length=1)
    admin_users: list[Username] = Field(default_factory=lambda: ["admin"])
    password: str | None = Field(
        None,
        min_length=8,
        description="Shared demo password; unset means a random one kept in the state folder",
    )


class SingleUserConfig(_Strict):
    """The per-user JupyterLab servers."""

    default_url: str = "/lab"
    start_timeout: int = Field(120, ge=5, le=3600, description="Seconds a spawn may take")
    # 120 s: p95 55 s measured with 4 spawns at once on 2 loaded cores (docs/capacity.md)
    http_timeout: int = Field(
        120, ge=5, le=3600, description="Seconds a started server may take to answer"
    )
    environment: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables for every user server"
    )


class DataConfig(_Strict):
    """Where the science data live (the ROMAN_DATA_URL contract)."""

    url: str | None = Field(
        None, description="s3://bucket/prefix or a local folder; unset: the platform's own store"
    )
    s3_endpoint: str | None = Field(None, description="S3 endpoint URL for s3:// data URLs")
    store: Literal["seaweedfs", "folder"] = Field(
        "seaweedfs",
        description="the platform's own store when url is unset: SeaweedFS S3 (s3://roman, data "
        "in <state>/seaweedfs) or the folder <state>/data",
    )
    sample: bool = Field(
        True, description="make the sample survey in the platform's own store on first start"
    )
    tap: bool | None = Field(
        None,
        description="run the TAP/ObsCore service (GAVO DaCHS; needs python3-gavo and "
        "postgresql-15-pgsphere, which scripts/system-deps.sh installs) and publish the store's "
        "index to it; sets ROMAN_TAP_URL. null: on where those are installed, else off (the "
        "banner says so); true: on, and a clear error where they are missing",
    )


class GatewayConfig(_Strict):
    """The Dask-Gateway server (local backend: schedulers and workers are local processes)."""

    worker_cores: int = Field(1, ge=1, le=64)
    worker_memory: str = Field("1 G", pattern=r"^\d+(\.\d+)?\s*[KMGT]?$")
    idle_timeout: int = Field(1800, ge=0, description="Seconds before an idle cluster is stopped")


class AccountsConfig(_Strict):
    """Which OS account runs each user's server and Dask cluster (docs/threat-model.md)."""

    mode: Literal["auto", "system", "shared"] = Field(
        "auto",
        description="system: one system account per hub user (needs root); shared: every user "
        "runs as the platform's own account (single-account mode, development only); auto: "
        "system where possible, else shared with the reason in the banner",
    )
    prefix: str = Field(
        "roman-",
        pattern=r"^[a-z_][a-z0-9_-]{0,11}$",
        description="account name = prefix + hub user name (e.g. roman-alice)",
    )
    runtime_dir: Path = Field(
        Path("/opt/roman-platform/runtime"),
        description="where the copy of the platform's Python that user accounts run is kept",
    )


class PlatformConfig(_Strict):
    """The whole local platform configuration (the schema of platform.yaml)."""

    state_dir: Path | None = Field(
        None, description="State folder (hub DB, secrets, user folders); default ./.state"
    )
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    ports: PortsConfig = Field(default_factory=PortsConfig)
    demo: DemoConfig = Field(default_factory=DemoConfig)
    singleuser: SingleUserConfig = Field(default_factory=SingleUserConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    accounts: AccountsConfig = Field(default_factory=AccountsConfig)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


def _one_line(source: str, exc: ValidationError) -> str:
    """The first validation error as ``file: a.b.c: message (got value)``."""
    err = exc.errors()[0]
    path = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown setting"
    got = err.get("input")
    extra = "" if err["type"] in {"extra_forbidden", "missing"} else f" (got {got!r})"
    more = len(exc.errors()) - 1
    tail = f" [and {more} more error{'s' if more > 1 else ''}]" if more else ""
    return f"{source}: {path}: {msg}{extra}{tail}".replace("\n", " ")


def load_config(path: Path | str | None = None, *, required: bool = False) -> PlatformConfig:
    """Load and validate platform.yaml; no file (and not ``required``) means all defaults."""
    if path is None:
        path = Path(DEFAULT_CONFIG_NAME)
        if not path.exists():
            return PlatformConfig()
    path = Path(path)
    if not path.exists():
        if required:
            raise ConfigError(f"{path}: configuration file not found")
        return PlatformConfig()
    from platform_lib.safe_yaml import YamlLimitError, safe_load

    try:
        data = safe_load(path.read_text(encoding="utf-8"), source=str(path))
    except YamlLimitError as exc:
        raise ConfigError(str(exc)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{path}:{where}: not valid YAML: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: (top level): expected a mapping of settings")
    try:
        return PlatformConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_one_line(str(path), exc)) from None
