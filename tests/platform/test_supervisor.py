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
from hub_config.local.processes import ComponentError, ManagedProcess
from hub_config.local.state import StateDir, StateError
from hub_config.local.supervisor import Platform, Supervisor

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


def child(tmp_path: Path, name: str, *, ignore_term: bool = False, die_after: float = 0,
          stop_timeout: float = 5.0, exit_now: bool = False) -> Recorded:
    folder = tmp_path / name
    folder.mkdir()
    argv = [sys.executable, "-c", "import sys; sys.exit(7)"] if exit_now else \
        [sys.executable, "-c", CHILD, str(folder), "1" if ignore_term else "0", str(die_after)]
    return Recorded(name, argv, env=dict(os.environ), cwd=folder,
                    log_file=tmp_path / "logs" / f"{name}.log",
                    ready=lambda: (folder / "ready").exists(), stop_timeout=stop_timeout)


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


def test_component_dying_stops_the_rest_with_exit_code_1(tmp_path):
    Recorded.events = []
    a, b = child(tmp_path, "a"), child(tmp_path, "b", die_after=0.5)
    sup = Supervisor(platform_with(tmp_path, a, b), ready_timeout=30)
    t = time.monotonic()
    assert sup.run(exit_after=60) == 1
    assert time.monotonic() - t < 30
    assert Recorded.events[-2:] == ["stop b", "stop a"]
    assert all(gone(pid) for pid in pids(a) + pids(b))


def test_start_failure_names_the_component_and_stops_what_started(tmp_path, caplog):
    Recorded.events = []
    a, bad, never = child(tmp_path, "a"), child(tmp_path, "bad", exit_now=True), child(tmp_path, "c")
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
        with pytest.raises(StateError, match=rf"in use by another running platform \(pid {os.getpid()}\)"):
            StateDir(tmp_path / "s").lock()
    finally:
        os.close(fd)
    os.close(StateDir(tmp_path / "s").lock())  # free again once the holder is gone


KILLED_SUPERVISOR = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from hub_config.local.processes import ManagedProcess
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
    sup = subprocess.Popen([sys.executable, "-c", KILLED_SUPERVISOR, str(folder), CHILD],
                           stdout=subprocess.PIPE, text=True)
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
