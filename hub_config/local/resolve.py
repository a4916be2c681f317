"""What one run of the local platform is resolved to, before anything starts.

The configuration (``platform.yaml``), the state folder and the ports become one
:class:`Platform`: the executables found in this environment, every port checked free on
127.0.0.1 (a taken port is the commonest start-up failure, named with the setting that chose
it), and the :class:`~hub_config.settings.PlatformSettings` every child's configuration reads.
The supervisor (:mod:`hub_config.local.supervisor`) then hands the :class:`Platform` to each
component factory and starts what they return.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import hub_config
from hub_config.local.accounts import from_settings
from hub_config.local.config import PlatformConfig
from hub_config.local.state import StateDir
from hub_config.processes import Component
from hub_config.settings import (
    SETTINGS_ENV,
    AccountsSettings,
    DemoSettings,
    GatewaySettings,
    HubSettings,
    PlatformSettings,
    ProxySettings,
    SingleUserSettings,
)
from platform_lib import env_contract

HOST = "127.0.0.1"
REPO_ROOT = Path(hub_config.__file__).resolve().parent.parent
GATEWAY_SERVICE_NAME = "dask-gateway"


class PlatformError(RuntimeError):
    """The platform cannot start; ``str()`` is a message meant for the operator, as is."""


# ---------------------------------------------------------------------------- executables
def bin_dir() -> Path:
    """The folder of this Python's console scripts (the virtualenv's bin)."""
    return Path(sys.executable).parent


def find_executable(name: str) -> str:
    """A console script of this environment, else the project's .local/bin, else PATH."""
    for folder in (bin_dir(), REPO_ROOT / ".local" / "bin", Path.cwd() / ".local" / "bin"):
        candidate = folder / name
        if candidate.exists() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    hint = {
        "configurable-http-proxy": "run 'make up' (scripts/install-node-tools.sh installs it "
        "into .local/)",
    }.get(name, "reinstall the project's [hub] dependencies")
    raise PlatformError(f"'{name}' not found in {bin_dir()}, .local/bin or PATH; {hint}")


def child_path() -> str:
    """PATH for children: this environment's scripts and .local/bin first."""
    parts = [str(bin_dir()), str(REPO_ROOT / ".local" / "bin"), os.environ.get("PATH", "")]
    return os.pathsep.join(p for p in parts if p)


# ---------------------------------------------------------------------------- ports
def resolve_ports(config: PlatformConfig, source: str) -> dict[str, int]:
    """Configured ports checked free on 127.0.0.1, and 0 replaced by a free port.

    A taken port is the commonest start-up failure (a second platform, a stale process), so it
    is checked before anything starts and named together with the setting that chose it.
    """
    wanted = config.ports.model_dump()
    fixed: dict[int, str] = {}
    for name, port in wanted.items():
        if port and port in fixed:
            raise PlatformError(
                f"ports.{fixed[port]} and ports.{name} in {source} are both {port}; "
                "each needs its own port"
            )
        if port:
            fixed[port] = name
    held: list[socket.socket] = []
    resolved: dict[str, int] = {}
    try:
        for name, port in wanted.items():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # as the servers bind: a port whose last connections are in TIME_WAIT is free to
            # them (without this, a restart was refused for ~60 s with nothing listening)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((HOST, port))
            except OSError:
                s.close()
                raise PlatformError(
                    f"port {port} on {HOST} is already in use (setting ports.{name} in "
                    f"{source}); stop what uses it or choose another port"
                ) from None
            held.append(s)  # held until all are chosen, so two zeros never get the same port
            resolved[name] = s.getsockname()[1]
    finally:
        for s in held:
            s.close()
    return resolved


# ---------------------------------------------------------------------------- the platform
@dataclass
class Platform:
    """Everything resolved for one run; factories read it and may add to it."""

    config: PlatformConfig
    state: StateDir
    config_source: str
    ports: dict[str, int]
    settings: PlatformSettings
    user_env: dict[str, str] = field(default_factory=dict)
    lock_fd: int | None = None  # held while the platform runs (see StateDir.lock)
    components: list[Component] = field(default_factory=list)

    @property
    def public_url(self) -> str:
        return self.settings.hub.public_url

    def child_env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = child_path()
        env[SETTINGS_ENV] = str(self.state.settings_file)
        env.update(extra)
        return env

    def log_file(self, name: str) -> Path:
        return self.state.logs_dir / f"{name}.log"


def build_settings(
    config: PlatformConfig, state: StateDir, ports: dict[str, int]
) -> PlatformSettings:
    """Resolve config + state + ports into the settings every child config reads."""
    public_url = f"http://{HOST}:{ports['http']}"
    hub_api = f"http://{HOST}:{ports['hub']}/hub/api"
    gateway_address = f"http://{HOST}:{ports['gateway']}"
    gateway_proxy = f"gateway://{HOST}:{ports['gateway_scheduler']}"
    data_url = config.data.url or str(state.data_dir)
    user_env = {
        "DASK_GATEWAY__ADDRESS": gateway_address,
        "DASK_GATEWAY__PROXY_ADDRESS": gateway_proxy,
        "DASK_GATEWAY__PUBLIC_ADDRESS": gateway_address,
        "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
        # JupyterLab's Dask panel (dask-labextension) starts and lists gateway clusters.
        "DASK_LABEXTENSION__FACTORY__MODULE": "dask_gateway",
        "DASK_LABEXTENSION__FACTORY__CLASS": "GatewayCluster",
        env_contract.DATA_URL: data_url,
    }
    if config.data.s3_endpoint:
        user_env[env_contract.DATA_S3_ENDPOINT] = config.data.s3_endpoint
    user_env.update(config.singleuser.environment)
    accounts = _accounts(config, state)
    runtime = from_settings(accounts)

    def user_program(name: str) -> str:
        """A program user processes run: the user runtime's in system-account mode."""
        found = find_executable(name)
        return found if runtime is None else runtime[1].program(found)

    dask = user_program("dask")
    return PlatformSettings(
        mode="local",
        state_dir=str(state.root),
        log_level=config.log_level,
        hub=HubSettings(
            ip=HOST,
            port=ports["hub"],
            public_url=public_url,
            api_url=hub_api,
            db_url=f"sqlite:///{state.hub_db}",
            cookie_secret_file=str(state.cookie_secret_file()),
            pid_file=str(state.root / "jupyterhub.pid"),
        ),
        proxy=ProxySettings(
            command=[find_executable("configurable-http-proxy")],
            api_url=f"http://{HOST}:{ports['proxy_api']}",
            auth_token=state.secret("proxy_auth_token"),
            pid_file=str(state.root / "jupyterhub-proxy.pid"),
        ),
        demo=DemoSettings(
            users=list(config.demo.users),
            admin_users=list(config.demo.admin_users),
            password=config.demo.password or state.demo_password(),
        ),
        singleuser=SingleUserSettings(
            cmd=[user_program("jupyterhub-singleuser")],
            users_dir=str(state.users_dir),
            allow_root=os.geteuid() == 0 and runtime is None,
            default_url=config.singleuser.default_url,
            start_timeout=config.singleuser.start_timeout,
            http_timeout=config.singleuser.http_timeout,
            environment=user_env,
        ),
        gateway=GatewaySettings(
            service_name=GATEWAY_SERVICE_NAME,
            api_token=state.secret("gateway_api_token"),
            address=gateway_address,
            proxy_address=gateway_proxy,
            listen=f"{HOST}:{ports['gateway']}",
            tcp_listen=f"{HOST}:{ports['gateway_scheduler']}",
            private_listen=f"{HOST}:{ports['gateway_private']}",
            db_url=f"sqlite:///{state.gateway_db}",
            encrypt_key=state.gateway_encrypt_key(),
            proxy_token=state.secret("gateway_proxy_token"),
            clusters_dir=str(state.gateway_dir / "clusters"),
            scheduler_cmd=[
                dask,
                "scheduler",
                "--preload",
                "platform_lib.dashboard_auth",
            ],  # dashboard gate
            worker_cmd=[dask, "worker"],
            worker_cores=config.gateway.worker_cores,
            worker_memory=config.gateway.worker_memory,
            idle_timeout=config.gateway.idle_timeout,
        ),
        accounts=accounts,
    )


def _accounts(config: PlatformConfig, state: StateDir) -> AccountsSettings:
    """Per-user system accounts or single-account mode (hub_config/local/accounts.py)."""
    from hub_config.local.accounts import AccountError, resolve_accounts
    from hub_config.local.user_runtime import RuntimeError_

    a = config.accounts
    try:
        return resolve_accounts(a.mode, a.prefix, a.runtime_dir, state, REPO_ROOT)
    except (AccountError, RuntimeError_, OSError) as exc:
        if a.mode == "system":
            raise PlatformError(f"per-user system accounts: {exc}") from None
        raise PlatformError(
            f"per-user system accounts failed ({exc}); set accounts.mode: shared in the "
            "configuration to run every user as this account"
        ) from None
