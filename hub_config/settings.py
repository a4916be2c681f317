"""The platform settings: the contract between the supervisor and the configs it starts.

Neutral (both modes read it): the local supervisor writes it; the chart's values become the same
model (:func:`hub_config.chart_values.chart_settings`), so the Kubernetes side never imports
:mod:`hub_config.local`.

The supervisor resolves platform.yaml, the state folder and the ports into one JSON file (mode
0600 inside the private state folder) and passes its path in ``ROMAN_PLATFORM_SETTINGS``. The hub
config (hub_config/jupyterhub_config.py) and the gateway config
(hub_config/gateway/local_config.py) read it back through :func:`load_settings`, so neither has to re-derive ports or secrets, and a
config file loaded outside the supervisor fails with a clear message instead of half-working.

Other areas add their own sections (the OIDC provider, the quota service, the data store) as
extra top-level keys; they are kept (``extra="allow"``) and reachable as attributes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from platform_lib import env_contract

SETTINGS_ENV = env_contract.PLATFORM_SETTINGS


class SettingsError(RuntimeError):
    """The settings file is missing or does not match the schema."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HubSettings(_Section):
    ip: str
    port: int
    public_url: str  # what users open: the proxy's public address
    api_url: str  # the hub API reached directly (services, spawners)
    db_url: str
    cookie_secret_file: str
    pid_file: str


class ProxySettings(_Section):
    command: list[str]
    api_url: str
    auth_token: str
    pid_file: str


class DemoSettings(_Section):
    users: list[str]
    admin_users: list[str]
    password: str


class SingleUserSettings(_Section):
    cmd: list[str]
    users_dir: str
    allow_root: bool
    default_url: str
    start_timeout: int
    http_timeout: int
    environment: dict[str, str] = Field(default_factory=dict)


class GatewaySettings(_Section):
    service_name: str
    api_token: str
    address: str  # http://127.0.0.1:PORT (DASK_GATEWAY__ADDRESS)
    proxy_address: str  # gateway://127.0.0.1:PORT (DASK_GATEWAY__PROXY_ADDRESS)
    listen: str  # host:port of the HTTP proxy
    tcp_listen: str  # host:port of the scheduler proxy
    private_listen: str  # host:port of the private API schedulers report to
    db_url: str
    encrypt_key: str
    proxy_token: str
    clusters_dir: str
    scheduler_cmd: list[str]
    worker_cmd: list[str]
    worker_cores: int
    worker_memory: str
    idle_timeout: int


class AccountsSettings(_Section):
    """Per-user system accounts (hub_config/local/accounts.py), as resolved at start."""

    mode: str  # "system" or "shared"
    reason: str | None = None  # why not "system"
    prefix: str = "roman-"
    homes: str = ""  # the users' folders (one per hub user)
    runtime_venv: str = ""  # the relocated venv user accounts run (user_runtime.py)
    runtime_project: str = ""  # the project's packages for them (on PYTHONPATH)
    moves: dict[str, str] = Field(default_factory=dict)  # platform prefix -> relocated copy


class PlatformSettings(BaseModel):
    """Everything the hub and gateway configs need, fully resolved."""

    model_config = ConfigDict(extra="allow")

    mode: str = "local"
    state_dir: str
    log_level: str
    hub: HubSettings
    proxy: ProxySettings
    demo: DemoSettings
    singleuser: SingleUserSettings
    gateway: GatewaySettings
    accounts: AccountsSettings | None = None


def write_settings(settings: PlatformSettings, path: Path) -> None:
    """Write the file private to this OS user before any secret goes in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(settings.model_dump(mode="json"), fh, indent=2, sort_keys=True)
    os.chmod(path, 0o600)


def load_settings(path: str | Path | None = None) -> PlatformSettings:
    """Read the settings the supervisor wrote (path from ``ROMAN_PLATFORM_SETTINGS`` by default)."""
    if path is None:
        path = os.environ.get(SETTINGS_ENV)
        if not path:
            raise SettingsError(
                f"{SETTINGS_ENV} is not set: this config is loaded by 'roman-platform up' "
                "(or by the Helm chart), not on its own"
            )
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"cannot read platform settings {path}: {exc}") from None
    try:
        return PlatformSettings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise SettingsError(f"platform settings {path}: {loc}: {err['msg']}") from None
