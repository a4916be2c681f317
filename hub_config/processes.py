"""Child processes the supervisor starts, checks and stops without leaving orphans.

Each child runs in its own process group (so a Ctrl-C in the terminal reaches only the
supervisor, which then stops children in reverse order, giving each a chance to clean up its own
children: the hub stops the user servers and the proxy, the gateway stops its clusters). What a
child started in yet another session (user servers, Dask schedulers) is found with psutil as a
descendant before the stop and killed if it outlives its parent's graceful shutdown.

It sits at the top of :mod:`hub_config`, below both the one-machine package (the supervisor and
its components, :mod:`hub_config.local`) and the TAP service (:mod:`hub_config.tap.service`
runs DaCHS as a :class:`ManagedProcess`), because the TAP code also runs in the chart's pods,
where the one-machine package has no place.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

import psutil

log = logging.getLogger("roman_platform.local")


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _die_with(parent_pid: int) -> Callable[[], None]:
    """preexec_fn: the child gets SIGTERM when the supervisor dies, even by SIGKILL.

    Children run in their own sessions (so Ctrl-C reaches only the supervisor); without this a
    killed or crashed supervisor would leave the hub, proxy and gateway running. On SIGTERM the
    hub and the gateway still clean up their own children.
    """

    def preexec() -> None:
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the supervisor died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


class ComponentError(RuntimeError):
    """A component failed to start or become ready; the message says which and why."""


class Component(Protocol):
    """What the supervisor manages: started in list order, stopped in reverse order."""

    name: str

    def start(self) -> None: ...

    def wait_ready(self, timeout: float) -> None: ...

    def refresh(self) -> None:
        """Remember the current descendants (called periodically by the supervisor)."""

    def alive(self) -> bool: ...

    # Optional: ``refresh()`` lets a component remember its process tree between polls.

    def stop(self, timeout: float | None = None) -> None: ...


def free_port() -> int:
    """A port free on 127.0.0.1 now (the OS picks it; a component binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when ``url`` answers with a status below 500 (a ready check, not a health verdict)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (urllib.error.URLError, OSError):
        return False


def http_ready(url: str) -> Callable[[], bool]:
    """A component's ready check: ``url`` answers 200 (its health endpoint is up, not just the
    socket)."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    return check


def tail(path: Path, lines: int = 15) -> str:
    """The end of a log file, for error messages that say why a child died."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def terminate_tree(
    root: psutil.Process | None, descendants: list[psutil.Process], pgid: int | None, timeout: float
) -> None:
    """Graceful stop of ``root`` (SIGTERM to its group, up to ``timeout``), then the rest.

    Whatever the graceful shutdown left behind (descendants in other sessions, or everything
    when the root is stuck) gets SIGTERM, then SIGKILL; every wait is bounded.
    """
    if root is not None and _running(root):
        try:
            if pgid is not None:
                os.killpg(pgid, signal.SIGTERM)
            else:
                root.terminate()
        except (ProcessLookupError, psutil.Error):
            pass
        psutil.wait_procs([root], timeout=timeout)
    leftovers = [p for p in ([root] if root is not None else []) + descendants if _running(p)]
    for p in leftovers:
        _signal(p, signal.SIGTERM)
    _, alive = psutil.wait_procs(leftovers, timeout=min(timeout, 5.0))
    for p in alive:
        _signal(p, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5.0)
    if pgid is not None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal(p: psutil.Process, sig: int) -> None:
    try:
        p.send_signal(sig)
    except psutil.Error:
        pass


class ManagedProcess:
    """One long-running child process with a log file and a readiness check."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        cwd: Path,
        log_file: Path,
        ready: Callable[[], bool],
        stop_timeout: float = 20.0,
        helpers: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        #: descendants (by a word of their command line) that serve only this process and are
        #: ended with it on a crash even outside its group, e.g. the hub's proxy: the restarted
        #: hub would otherwise race the old proxy for its port ("Failed to start proxy")
        self.helpers = helpers
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.log_file = log_file
        self.ready = ready
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        # Descendants seen so far: if this child dies, its children (often in their own
        # sessions) are re-parented away and can no longer be found from it.
        self._known: dict[int, psutil.Process] = {}

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._log = os.fdopen(fd, "ab")  # closed in stop()
        self._log.write(
            f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} start {self.name}\n".encode()
        )
        self._log.flush()
        try:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: Ctrl-C goes to the supervisor only
                preexec_fn=_die_with(os.getpid()),
            )
        except OSError as exc:
            raise ComponentError(f"{self.name}: cannot run {self.argv[0]}: {exc}") from None
        log.debug("%s started (pid %s): %s", self.name, self.proc.pid, " ".join(self.argv))

    def refresh(self) -> None:
        """Remember the current descendants (called periodically by the supervisor)."""
        if not self.alive():
            return
        try:
            for p in psutil.Process(self.proc.pid).children(recursive=True):  # type: ignore[union-attr]
                self._known.setdefault(p.pid, p)
        except psutil.Error:
            pass

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.05
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.proc.returncode if self.proc else None
                raise ComponentError(
                    f"{self.name} exited with code {code} during start-up; "
                    f"last lines of {self.log_file}:\n{tail(self.log_file)}"
                )
            if self.ready():
                return
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        raise ComponentError(
            f"{self.name} not ready after {timeout:.0f} s; last lines of {self.log_file}:\n"
            f"{tail(self.log_file)}"
        )

    def reap_crashed(self, timeout: float = 5.0) -> None:
        """After an unexpected exit, before a restart: end what was left in its process group
        (its private helpers, such as the gateway's proxy, which would hold its port), close the
        log, and keep the descendants that run in sessions of their own (user servers, Dask
        clusters, the hub's proxy): the restarted process re-adopts them. They stay known, so
        the final stop still ends every one of them."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the child's pid
        in_group = []
        for p in list(self._known.values()):
            try:
                helper = any(h in part for part in p.cmdline() for h in self.helpers)
                if (helper or os.getpgid(p.pid) == pgid) and _running(p):
                    in_group.append(p)
            except (ProcessLookupError, PermissionError, psutil.Error):
                continue
        terminate_tree(None, in_group, pgid, timeout)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        if self._log:
            self._log.close()
            self._log = None

    def stop(self, timeout: float | None = None) -> None:
        timeout = self.stop_timeout if timeout is None else timeout
        if self.proc is None:
            return
        self.refresh()
        try:
            root = psutil.Process(self.proc.pid)
        except psutil.Error:
            root = None
        # psutil.Process remembers the create time: a recycled pid is never signalled.
        descendants = [p for p in self._known.values() if _running(p)]
        pgid = self.proc.pid  # start_new_session: the group id is the child's pid
        if self.proc.poll() is None:
            terminate_tree(root, descendants, pgid, timeout)
        else:  # died on its own: its group may still hold children
            terminate_tree(None, descendants, pgid, timeout)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self._log:
            self._log.close()
            self._log = None
        log.debug("%s stopped", self.name)
