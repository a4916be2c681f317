"""The local platform supervisor: resolve the configuration, start the components, stop them all.

Order matters and is one list (:data:`COMPONENT_FACTORIES`): the data store, the development
OIDC provider, dask-gateway-server, then JupyterHub (which starts configurable-http-proxy and its
managed services). JupyterHub waits for the external services it knows about, so everything it
talks to is started and ready before it. Stopping goes through the list backwards.

Each factory receives the :class:`~hub_config.local.resolve.Platform` (config, state folder,
resolved ports, settings under construction: :mod:`hub_config.local.resolve`) and returns a
:class:`~hub_config.processes.Component` or ``None`` (not enabled). A factory may add to ``platform.settings`` (extra sections other configs read) and to
``platform.user_env`` (the environment every user server gets) before anything starts, because
the settings file is written once, after all factories ran, before the first component starts.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import hub_config
from hub_config.local.config import PlatformConfig
from hub_config.local.resolve import Platform, build_settings, resolve_ports
from hub_config.local.restarts import OrphanReaper, Restarter
from hub_config.local.state import StateDir
from hub_config.processes import Component, ComponentError, ManagedProcess, http_ready
from hub_config.settings import write_settings

log = logging.getLogger("roman_platform.local")

HUB_CONFIG_FILE = Path(hub_config.__file__).resolve().parent / "jupyterhub_config.py"
GATEWAY_CONFIG_FILE = Path(hub_config.__file__).resolve().parent / "gateway" / "local_config.py"


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
#: - the data store (SeaweedFS, hub_config/local/seaweedfs_platform.py) goes FIRST: its factory adds
#:   ROMAN_DATA_URL / ROMAN_DATA_S3_ENDPOINT / AWS_* to ``platform.user_env``;
#: - the development OIDC provider (``python -m hub_config.oidc_dev``) goes before the gateway:
#:   its factory adds its issuer URL as an extra settings section the hub config reads.
def _oidc_component(p: Platform) -> Component | None:
    # Identity (issue 4): the development OIDC provider; adds settings.oidc for the hub config.
    from hub_config.local.oidc import oidc_component

    return oidc_component(p)


def _data_store_component(p: Platform) -> Component | None:
    # Data (issue 8): SeaweedFS as the platform's S3 store (unless data.url / data.store: folder),
    # the sample survey on first start; adds ROMAN_DATA_URL / ROMAN_DATA_S3_ENDPOINT / AWS_*.
    from hub_config.local.seaweedfs_platform import seaweedfs_component

    return seaweedfs_component(p)


def _tap_component(p: Platform) -> Component | None:
    # Discovery (issue 17): the TAP/ObsCore service (DaCHS) when data.tap is on; ROMAN_TAP_URL.
    from hub_config.local.tap_platform import tap_component

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
