"""The local platform supervisor: resolve the configuration, start the components, stop them all.

Order matters and is one list (:data:`COMPONENT_FACTORIES`): the data store, the development
OIDC provider, dask-gateway-server, then JupyterHub (which starts configurable-http-proxy and its
managed services). JupyterHub waits for the external services it knows about, so everything it
talks to is started and ready before it. Stopping goes through the list backwards.

Each factory receives the :class:`Platform` (config, state folder, resolved ports, settings under
construction) and returns a :class:`~hub_config.local.processes.Component` or ``None`` (not
enabled). A factory may add to ``platform.settings`` (extra sections other configs read) and to
``platform.user_env`` (the environment every user server gets) before anything starts, because
the settings file is written once, after all factories ran, before the first component starts.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import hub_config
from hub_config.local.config import PlatformConfig
from hub_config.local.processes import Component, ComponentError, ManagedProcess, http_ready
from hub_config.local.restarts import OrphanReaper, Restarter
from hub_config.local.state import StateDir
from hub_config.settings import (
    SETTINGS_ENV,
    DemoSettings,
    GatewaySettings,
    HubSettings,
    PlatformSettings,
    ProxySettings,
    SingleUserSettings,
    write_settings,
)
from platform_lib import env_contract

log = logging.getLogger("roman_platform.local")

HOST = "127.0.0.1"
REPO_ROOT = Path(hub_config.__file__).resolve().parent.parent
HUB_CONFIG_FILE = Path(hub_config.__file__).resolve().parent / "jupyterhub_config.py"
GATEWAY_CONFIG_FILE = Path(__file__).resolve().parent / "gateway_config.py"
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
    dask = find_executable("dask")
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
            cmd=[find_executable("jupyterhub-singleuser")],
            users_dir=str(state.users_dir),
            allow_root=os.geteuid() == 0,
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
    )


# ---------------------------------------------------------------------------- components
def gateway_component(p: Platform) -> Component:
    """dask-gateway-server with the local backend, authenticating users through the hub."""
    return ManagedProcess(
        "dask-gateway",
        [sys.executable, "-m", "dask_gateway_server", "-f", str(GATEWAY_CONFIG_FILE)],
        env=p.child_env(),
        cwd=p.state.gateway_dir,
        log_file=p.log_file("dask-gateway"),
        ready=http_ready(f"{p.settings.gateway.address}/api/health"),
    )


def hub_component(p: Platform) -> Component:
    """JupyterHub; it starts configurable-http-proxy and stops it (and user servers) on exit.

    Ready means the hub API answers through the proxy's public URL, i.e. what a user sees.
    """
    argv = [sys.executable, "-m", "jupyterhub", "-f", str(HUB_CONFIG_FILE)]
    if p.config.log_level == "DEBUG":
        argv.append("--debug")
    return ManagedProcess(
        "jupyterhub",
        argv,
        env=p.child_env(),
        cwd=p.state.root,
        log_file=p.log_file("jupyterhub"),
        ready=http_ready(f"{p.public_url}/hub/api/"),
        stop_timeout=30.0,
        helpers=("configurable-http-proxy",),
    )


#: Started in this order, stopped in reverse. Hook points for other areas:
#: - the data store (SeaweedFS, hub_config/local/seaweedfs.py) goes FIRST: its factory adds
#:   ROMAN_DATA_URL / ROMAN_DATA_S3_ENDPOINT / AWS_* to ``platform.user_env``;
#: - the development OIDC provider (``python -m hub_config.oidc_dev``) goes before the gateway:
#:   its factory adds its issuer URL as an extra settings section the hub config reads.
def _oidc_component(p: Platform) -> Component | None:
    # Identity (issue 4): the development OIDC provider; adds settings.oidc for the hub config.
    from hub_config.oidc_dev.local import oidc_component

    return oidc_component(p)


def _data_store_component(p: Platform) -> Component | None:
    # Data (issue 8): SeaweedFS as the platform's S3 store (unless data.url / data.store: folder),
    # the sample survey on first start; adds ROMAN_DATA_URL / ROMAN_DATA_S3_ENDPOINT / AWS_*.
    from hub_config.local.seaweedfs import seaweedfs_component

    return seaweedfs_component(p)


def _tap_component(p: Platform) -> Component | None:
    # Discovery (issue 17): the TAP/ObsCore service (DaCHS) when data.tap is on; ROMAN_TAP_URL.
    from hub_config.local.tap import tap_component

    return tap_component(p)


COMPONENT_FACTORIES: list[Callable[[Platform], Component | None]] = [
    _data_store_component,
    _tap_component,
    _oidc_component,
    gateway_component,
    hub_component,
]


def prepare(config: PlatformConfig, state_dir: Path, config_source: str) -> Platform:
    """Create the state folder, pick ports, build components, write the settings file."""
    ports = resolve_ports(config, config_source)  # first: a refusal must leave no trace
    state = StateDir(state_dir)
    state.create()
    lock_fd = state.lock()
    settings = build_settings(config, state, ports)
    platform = Platform(config, state, config_source, ports, settings, lock_fd=lock_fd)
    platform.user_env = dict(settings.singleuser.environment)
    for factory in COMPONENT_FACTORIES:
        component = factory(platform)
        if component is not None:
            platform.components.append(component)
    # Factories may have added to the user environment; the settings file carries the result.
    settings.singleuser.environment = platform.user_env
    write_settings(settings, state.settings_file)
    return platform


class _StopRequested(Exception):
    pass


class Supervisor:
    """Runs a prepared :class:`Platform` until a signal, then stops it in reverse order."""

    def __init__(self, platform: Platform, *, ready_timeout: float = 120.0) -> None:
        self.platform = platform
        self.ready_timeout = ready_timeout
        self.started: list[Component] = []
        self.timings: dict[str, float] = {}
        self._stopping = False
        self.restarter = Restarter(ready_timeout=ready_timeout)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if not self._stopping:
            raise _StopRequested(signal.Signals(signum).name)

    def start(self) -> None:
        t0 = time.monotonic()
        for component in self.platform.components:
            t = time.monotonic()
            self.started.append(component)
            component.start()
            component.wait_ready(self.ready_timeout)
            refresh = getattr(component, "refresh", None)
            if refresh:
                refresh()
            self.timings[component.name] = time.monotonic() - t
            log.info("%s ready (%.1f s)", component.name, self.timings[component.name])
        self.timings["total"] = time.monotonic() - t0

    def stop(self) -> None:
        self._stopping = True
        for component in reversed(self.started):
            try:
                component.stop()  # each knows its own timeout
            except Exception:
                log.exception("error while stopping %s", component.name)
        self.started.clear()

    def run(
        self,
        *,
        on_ready: Callable[[Supervisor], None] | None = None,
        exit_after: float | None = None,
        poll: float = 0.5,
    ) -> int:
        """Start, wait for SIGINT/SIGTERM/SIGHUP (or ``exit_after`` seconds), stop. Exit code."""
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        for s in previous:
            signal.signal(s, self._on_signal)
        code = 0
        reaper = OrphanReaper(self.platform.components)  # also while stopping
        try:
            self.start()
            if on_ready:
                on_ready(self)
            deadline = None if exit_after is None else time.monotonic() + exit_after
            while deadline is None or time.monotonic() < deadline:
                for c in self.started:
                    refresh = getattr(c, "refresh", None)
                    if refresh:
                        refresh()
                self.restarter.check(self.started)  # a crash is restarted, never the end
                time.sleep(poll)
        except _StopRequested as req:
            log.info("%s received: stopping the platform", req)
        except ComponentError as exc:
            log.error("%s", exc)
            code = 1
        finally:
            self._stopping = True
            self.stop()
            reaper.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
        return code
