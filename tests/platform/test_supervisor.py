"""The supervisor with small real processes: order, readiness, failures, process-tree cleanup."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from hub_config.local.config import PlatformConfig
from hub_config.local.resolve import Platform
from hub_config.local.state import StateDir, StateError
from hub_config.local.supervisor import Supervisor
from hub_config.processes import ComponentError, ManagedProcess

# A child that starts a grandchild in ANOTHER session (as the hub does with user servers and the
# gateway with schedulers), writes both pids, marks itself ready, and optionally ignores SIGTERM.
CHILD = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    folder, ignore_term, die_after = sys.argv[1], sys.argv[2] == "1", float(sys.argv[3])
    if ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    g = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                         start_new_session=True)
    open(os.path.join(folder, "pids"), "w").write(f"{os.getpid()} {g.pid}")
    open(os.path.join(folder, "ready"), "w").write("1")
    t = time.monotonic()
    while die_after <= 0 or time.monotonic() - t < die_after:
        time.sleep(0.05)
    sys.exit(3)
""")


class Recorded(ManagedProcess):
    events: list[str] = []

    def start(self) -> None:
        Recorded.events.append(f"start {self.name}")
        super().start()

    def stop(self, timeout: float | None = None) -> None:
        Recorded.events.append(f"stop {self.name}")
        super().stop(timeout)


def child(
    tmp_path: Path,
    name: str,
    *,
    ignore_term: bool = False,
    die_after: float = 0,
    stop_timeout: float = 5.0,
    exit_now: bool = False,
) -> Recorded:
    folder = tmp_path / name
    folder.mkdir()
    argv = (
        [sys.executable, "-c", "import sys; sys.exit(7)"]
        if exit_now
        else [sys.executable, "-c", CHILD, str(folder), "1" if ignore_term else "0", str(die_after)]
    )
    return Recorded(
        name,
        argv,
        env=dict(os.environ),
        cwd=folder,
        log_file=tmp_path / "logs" / f"{name}.log",
        ready=lambda: (folder / "ready").exists(),
        stop_timeout=stop_timeout,
    )


def pids(component: Recorded) -> list[int]:
    return [int(p) for p in (component.cwd / "pids").read_text().split()]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def platform_with(tmp_path: Path, *components: Recorded) -> Platform:
    state = StateDir(tmp_path / "state")
    state.create()
    p = Platform(PlatformConfig(), state, "test", {}, settings=None)  # type: ignore[arg-type]
    p.components.extend(components)
    return p


def test_start_in_order_stop_in_reverse_and_no_process_left(tmp_path):
    Recorded.events = []
    a, b = child(tmp_path, "a"), child(tmp_path, "b", ignore_term=True, stop_timeout=1.0)
    sup = Supervisor(platform_with(tmp_path, a, b), ready_timeout=30)
    assert sup.run(exit_after=0.2) == 0
    assert Recorded.events == ["start a", "start b", "stop b", "stop a"]
    everything = pids(a) + pids(b)
    assert all(gone(pid) for pid in everything), "a child or grandchild outlived the stop"


def test_crashed_component_is_restarted_with_back_off_and_keeps_its_sessions(tmp_path, caplog):
    """kill -9 of one component: restarted, its own-session children (user servers, clusters)
    kept for the new process to re-adopt, its process group (private helpers) ended; the rest
    untouched; only the final stop ends everything. (Before: the whole platform stopped.)"""
    import signal
    import threading

    Recorded.events = []
    a, b = child(tmp_path, "a"), child(tmp_path, "b")
    sup = Supervisor(platform_with(tmp_path, a, b), ready_timeout=30)
    seen: dict[str, object] = {}

    def crash() -> None:
        deadline = time.monotonic() + 20
        while "total" not in sup.timings and time.monotonic() < deadline:  # all started
            time.sleep(0.05)
        seen["first"] = pids(b)
        (b.cwd / "ready").unlink()
        os.kill(seen["first"][0], signal.SIGKILL)
        while not (b.cwd / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        seen["second"] = pids(b)
        seen["kept"] = not gone(seen["first"][1])
        seen["a"] = a.alive()

    t = threading.Thread(target=crash)
    t.start()
    assert sup.run(exit_after=8) == 0
    t.join(30)
    assert Recorded.events[:2] == ["start a", "start b"] and "start b" in Recorded.events[2:]
    assert seen["second"][0] != seen["first"][0], "b was not restarted"
    assert seen["kept"], "the crashed component's own-session child was killed"
    assert seen["a"], "another component was stopped by b's crash"
    assert sup.restarter.restarts("b") == 1 and sup.restarter.restarts("a") == 0
    assert "b exited unexpectedly" in caplog.text and "b restarted" in caplog.text
    everything = pids(a) + seen["first"] + seen["second"]
    assert all(gone(pid) for pid in everything), "a process outlived the final stop"


def test_restart_back_off_doubles_while_it_keeps_failing(tmp_path):
    from hub_config.local.restarts import Restarter

    bad = child(tmp_path, "bad", exit_now=True)
    bad.start()
    bad.proc.wait(10)
    r = Restarter(ready_timeout=5, first_delay=0.05, max_delay=0.4)
    delays = []
    deadline = time.monotonic() + 20
    while len(delays) < 5 and time.monotonic() < deadline:
        r.check([bad])
        d = r.states["bad"].delay
        if not delays or d != delays[-1]:
            delays.append(d)
        time.sleep(0.02)
    assert delays[:5] == [0.05, 0.1, 0.2, 0.4, 0.4][: len(delays[:5])] and len(delays) >= 4
    assert r.restarts("bad") == 0
    bad.stop()


def test_port_check_binds_as_servers_do(tmp_path):
    """A port whose last connection is in TIME_WAIT is free to a server (SO_REUSEADDR); the
    check refused it for ~60 s before. A listening port is still refused."""
    import socket

    from hub_config.local.resolve import PlatformError, resolve_ports

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()  # the server side closes first: its port goes to TIME_WAIT
    time.sleep(0.1)
    client.close()
    server.close()
    plain = socket.socket()
    with pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # what the old check did
    plain.close()
    config = PlatformConfig.model_validate(
        {"ports": {"http": port, "proxy_api": 0, "hub": 0, "gateway": 0, "gateway_scheduler": 0}}
    )
    assert resolve_ports(config, "test")["http"] == port
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    config = PlatformConfig.model_validate(
        {
            "ports": {
                "http": busy.getsockname()[1],
                "hub": 0,
                "proxy_api": 0,
                "gateway": 0,
                "gateway_scheduler": 0,
            }
        }
    )
    with pytest.raises(PlatformError, match="already in use"):
        resolve_ports(config, "test")
    busy.close()


def test_start_failure_names_the_component_and_stops_what_started(tmp_path, caplog):
    Recorded.events = []
    a, bad, never = (
        child(tmp_path, "a"),
        child(tmp_path, "bad", exit_now=True),
        child(tmp_path, "c"),
    )
    sup = Supervisor(platform_with(tmp_path, a, bad, never), ready_timeout=30)
    assert sup.run(exit_after=60) == 1
    assert "start c" not in Recorded.events
    assert Recorded.events[-2:] == ["stop bad", "stop a"]
    assert all(gone(pid) for pid in pids(a))
    assert "bad exited with code 7 during start-up" in caplog.text
    assert str(tmp_path / "logs" / "bad.log") in caplog.text  # where to look next
    lone = child(tmp_path, "lone", exit_now=True)
    lone.start()
    with pytest.raises(ComponentError, match=r"^lone exited with code 7 during start-up"):
        lone.wait_ready(10)
    lone.stop()


def test_one_platform_per_state_folder(tmp_path):
    first = StateDir(tmp_path / "s")
    first.create()
    fd = first.lock()
    try:
        with pytest.raises(
            StateError, match=rf"in use by another running platform \(pid {os.getpid()}\)"
        ):
            StateDir(tmp_path / "s").lock()
    finally:
        os.close(fd)
    os.close(StateDir(tmp_path / "s").lock())  # free again once the holder is gone


KILLED_SUPERVISOR = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from hub_config.processes import ManagedProcess
    folder = Path(sys.argv[1])
    m = ManagedProcess("child", [sys.executable, "-c", sys.argv[2], str(folder), "0", "0"],
                       env=dict(os.environ), cwd=folder, log_file=folder / "child.log",
                       ready=lambda: (folder / "ready").exists())
    m.start()
    m.wait_ready(60)
    print("READY", flush=True)
    time.sleep(300)
""")


def test_children_die_with_a_killed_supervisor(tmp_path):
    """SIGKILL (or a crash) gives the supervisor no chance to clean up; its children go anyway."""
    import signal
    import subprocess

    folder = tmp_path / "k"
    folder.mkdir()
    sup = subprocess.Popen(
        [sys.executable, "-c", KILLED_SUPERVISOR, str(folder), CHILD],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sup.stdout.readline().strip() == "READY"
        child_pid, _ = (int(p) for p in (folder / "pids").read_text().split())
        assert not gone(child_pid)
        sup.send_signal(signal.SIGKILL)
        sup.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not gone(child_pid):
            time.sleep(0.1)
        assert gone(child_pid), "child outlived its SIGKILLed supervisor"
    finally:
        if sup.poll() is None:
            sup.kill()
        for pid in (int(p) for p in (folder / "pids").read_text().split()):
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass
