"""Crashed components restarted with back-off, so one crash does not end every session.

Before, any component exiting made the supervisor stop the whole platform, and every notebook and
kernel died with it. Now a component that exits is cleaned up (:meth:`ManagedProcess.reap_crashed`
ends only its own process group, keeping the user servers and Dask clusters it started) and
started again after a delay that doubles on each failed attempt (1 s, 2 s, 4 s ... at most
:attr:`Restarter.max_delay`) and resets once it has stayed up for :attr:`Restarter.stable_after`.
It is never given up on: only Ctrl-C (or SIGTERM) stops the platform.

What survives what (measured by tests/platform/test_faults.py):
* the hub restarts on the same database and re-adopts the running servers (JupyterHub polls each
  spawner from its saved state; the local spawner polls a pid that is not its child);
* the gateway restarts on its database and re-adopts its clusters' processes (or, when they are
  gone, marks them stopped);
* SeaweedFS and the OIDC provider down degrade data access and new logins while they restart;
  running servers and kernels are not touched.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from hub_config.processes import Component, ComponentError

log = logging.getLogger("roman_platform.restarts")


@dataclass
class _State:
    delay: float
    next_try: float = 0.0
    down_since: float | None = None
    up_since: float | None = None
    restarts: int = 0


class Restarter:
    """Watches started components; call :meth:`check` from the supervisor's loop."""

    def __init__(
        self,
        *,
        ready_timeout: float,
        first_delay: float = 1.0,
        max_delay: float = 60.0,
        stable_after: float = 120.0,
    ) -> None:
        self.ready_timeout = ready_timeout
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.stable_after = stable_after
        self.states: dict[str, _State] = {}

    def restarts(self, name: str) -> int:
        """How many times ``name`` has been restarted successfully."""
        state = self.states.get(name)
        return state.restarts if state else 0

    def check(self, components: list[Component]) -> None:
        """One pass: note who is up, restart whoever is down and due (blocks while it starts)."""
        now = time.monotonic()
        for c in components:
            state = self.states.setdefault(c.name, _State(self.first_delay))
            if c.alive():
                if state.up_since and now - state.up_since > self.stable_after:
                    state.delay = self.first_delay  # stayed up: the next crash restarts fast
                continue
            if state.down_since is None:
                code = getattr(getattr(c, "proc", None), "returncode", None)
                log.error(
                    "%s exited unexpectedly (code %s); restarting in %.0f s; running user "
                    "servers and clusters are kept",
                    c.name,
                    code,
                    state.delay,
                )
                self._clean_up(c)
                state.down_since, state.next_try, state.up_since = now, now + state.delay, None
            if now >= state.next_try:
                self._try_start(c, state)

    def _clean_up(self, c: Component) -> None:
        reap = getattr(c, "reap_crashed", None)
        try:
            reap() if reap else c.stop()
        except Exception:
            log.exception("cleaning up after %s failed", c.name)

    def _try_start(self, c: Component, state: _State) -> None:
        t0 = time.monotonic()
        try:
            c.start()
            c.wait_ready(self.ready_timeout)
        except ComponentError as exc:
            state.delay = min(state.delay * 2, self.max_delay)
            state.next_try = time.monotonic() + state.delay
            log.error(
                "%s did not come back (%s); next attempt in %.0f s",
                c.name,
                str(exc).splitlines()[0],
                state.delay,
            )
            self._clean_up(c)
            return
        refresh = getattr(c, "refresh", None)
        if refresh:
            refresh()
        state.restarts += 1
        log.warning(
            "%s restarted (ready in %.1f s, %.1f s after it went down)",
            c.name,
            time.monotonic() - t0,
            time.monotonic() - (state.down_since or t0),
        )
        state.down_since, state.up_since = None, time.monotonic()
        state.delay = min(state.delay * 2, self.max_delay)


def become_subreaper() -> bool:
    """Make this process the subreaper of its descendants (Linux ``PR_SET_CHILD_SUBREAPER``).

    When the hub crashes, its user servers are re-parented here instead of to PID 1, so their
    exit is reaped (:func:`reap_orphans`) and a stopped server is never a zombie that the
    restarted hub's ``poll`` (``kill(pid, 0)``) would take for running.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def reap_orphans(components: list[Component]) -> list[int]:
    """Reap exited adopted descendants (not the components' own processes); returns their pids."""
    import os

    import psutil

    own = {getattr(getattr(c, "proc", None), "pid", None) for c in components}
    reaped: list[int] = []
    try:
        children = psutil.Process().children()
    except psutil.Error:
        return reaped
    for p in children:
        if p.pid in own:
            continue
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(p.pid, os.WNOHANG)
                reaped.append(p.pid)
        except (psutil.Error, ChildProcessError):
            continue
    return reaped


class OrphanReaper:
    """Makes the supervisor the subreaper of its tree and reaps orphans in a thread, every
    ``every`` seconds until :meth:`close` (so also while the platform stops: a server adopted by
    a restarted hub exits as the supervisor's child, and unreaped it would look alive to the
    hub's stop, which then waited its full SIGINT/SIGTERM/SIGKILL timeouts)."""

    def __init__(self, components: list[Component], every: float = 0.2) -> None:
        import threading

        self.components = components
        self.active = become_subreaper()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(every,), daemon=True, name="orphan-reaper"
        )
        if self.active:
            self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            reap_orphans(self.components)

    def close(self) -> None:
        self._stop.set()
        if self.active:
            self._thread.join(5)
            reap_orphans(self.components)
