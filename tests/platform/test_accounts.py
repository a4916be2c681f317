"""Per-user system accounts (hub_config/local/accounts.py) and the runtime they run
(hub_config/local/user_runtime.py), piece by piece; the whole platform in that mode is attacked
in tests/security/test_system_accounts.py.

Tests that make system accounts need root (CI runs as root) and remove what they made.
"""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from hub_config.local.accounts import (
    MARKER,
    AccountError,
    SystemAccounts,
    resolve_accounts,
    unavailable_reason,
)
from hub_config.local.state import StateDir
from hub_config.local.user_runtime import DEFAULT_ROOT, RuntimeError_, UserRuntime, ensure_runtime

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="making system accounts needs root")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def test_prefix():
    """A prefix no real account uses; every account made with it is removed afterwards."""
    prefix = f"rt{secrets.token_hex(3)}-"
    yield prefix
    for entry in pwd.getpwall():
        if entry.pw_name.startswith(prefix):
            subprocess.run(["userdel", entry.pw_name], check=False, capture_output=True)


@pytest.fixture
def open_tmp():
    """A folder other accounts can enter (pytest's tmp_path is inside a 0700 folder)."""
    base = Path(tempfile.mkdtemp(prefix="roman-accounts-", dir="/tmp"))
    os.chmod(base, 0o711)
    yield base
    subprocess.run(["rm", "-rf", str(base)], check=False)


def test_account_names_are_valid_unique_and_bounded(tmp_path):
    acc = SystemAccounts("roman-", tmp_path)
    assert acc.name("alice") == "roman-alice"
    assert acc.home("alice") == tmp_path / "alice"
    odd = ["Alice", "alice.smith@example.org", "a" * 60, "ALICE", "bob+test", "-x"]
    names = [acc.name(u) for u in odd]
    assert len(set(names)) == len(odd), names  # "Alice" and "ALICE" do not share an account
    for n in names:
        assert len(n) <= 32 and n.startswith("roman-"), n
        assert all(c.islower() or c.isdigit() or c in "_-" for c in n), n
    assert acc.name("alice.smith@example.org") != acc.name("alice-smith-example-org")


@needs_root
def test_an_account_the_platform_did_not_make_is_refused(test_prefix, open_tmp):
    name = f"{test_prefix}mallory"
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--comment", "someone else's", name],
        check=True,
        capture_output=True,
    )
    acc = SystemAccounts(test_prefix, open_tmp / "users")
    with pytest.raises(AccountError, match="was not made by the platform"):
        acc.ensure("mallory")
    assert not (open_tmp / "users" / "mallory").exists()  # nothing handed over


@needs_root
def test_ensure_makes_the_account_and_hands_it_its_home(test_prefix, open_tmp):
    users = open_tmp / "users"
    users.mkdir()
    old = users / "erin"
    old.mkdir()
    (old / "from-single-account-mode.txt").write_text("mine")  # owned by root
    acc = SystemAccounts(test_prefix, users)
    entry = acc.ensure("erin")
    assert entry.pw_name == f"{test_prefix}erin" and entry.pw_gecos.startswith(MARKER)
    assert entry.pw_uid != 0 and entry.pw_shell.endswith("nologin")
    for p in (old, old / "from-single-account-mode.txt"):
        assert p.stat().st_uid == entry.pw_uid
    assert old.stat().st_mode & 0o777 == 0o700
    assert acc.ensure("erin").pw_uid == entry.pw_uid  # the second call finds it
    assert acc.groups(entry) == [entry.pw_gid]


def test_system_mode_where_it_cannot_be_done_is_an_error_auto_falls_back(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    state = StateDir(private / "state")
    reason = unavailable_reason(state.root)
    assert reason is not None
    assert ("not running as root" in reason) or (str(private) in reason), reason
    with pytest.raises(AccountError, match="accounts.mode is system but"):
        resolve_accounts("system", "roman-", tmp_path / "rt", state, REPO)
    fallback = resolve_accounts("auto", "roman-", tmp_path / "rt", state, REPO)
    assert (fallback.mode, fallback.reason) == ("shared", reason)
    shared = resolve_accounts("shared", "roman-", tmp_path / "rt", state, REPO)
    assert shared.mode == "shared" and not (tmp_path / "rt").exists()


@needs_root
def test_the_user_runtime_runs_as_another_account_and_leaves_the_venv_alone():
    """The copy every account runs (made once per venv; the security suite's platform made it
    already, else this makes it): Python, the science stack and the project import as
    ``nobody``; the platform's own venv is unchanged (the copy is hard links; rewritten files
    are new files)."""
    before = (Path(sys.prefix) / "pyvenv.cfg").read_text()
    folder, moves = ensure_runtime(DEFAULT_ROOT)
    venv = folder / "venv"
    code = (
        "import sys, json, astropy, dask, jupyterhub.singleuser, roman_datamodels\n"
        "print(json.dumps([sys.prefix, sys.base_prefix, sys.executable]))"
    )
    out = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        + [str(venv / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        cwd="/",
        env={"PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    prefix, base, exe = __import__("json").loads(out.stdout)
    assert prefix == str(venv) and base == str(folder / "python") and exe.startswith(str(venv))
    assert (Path(sys.prefix) / "pyvenv.cfg").read_text() == before
    script = (venv / "bin" / "jupyterhub-singleuser").read_text().splitlines()[0]
    assert script == f"#!{venv}/bin/python"
    assert (
        (Path(sys.prefix) / "bin" / "jupyterhub-singleuser")
        .read_text()
        .startswith(f"#!{sys.prefix}/bin/python")
    )
    # each environment overlay (make setup makes 2026.2's) is relocated with its own pins
    from hub_config.environments import local_environments_dir

    ask = "import romancal; print(romancal.__version__)"
    overlays = [
        p for p in sorted(local_environments_dir().glob("*")) if (p / "pyvenv.cfg").exists()
    ]
    for overlay in overlays:
        own = subprocess.run(
            [str(overlay / "bin" / "python"), "-c", ask], capture_output=True, text=True, check=True
        ).stdout
        moved = folder / "environments" / overlay.name / "bin" / "python"
        theirs = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", str(moved)]
            + ["-c", ask],
            capture_output=True,
            text=True,
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "MPLCONFIGDIR": "/tmp"},
            timeout=120,
            check=False,
        )
        assert theirs.returncode == 0, theirs.stderr[-2000:]
        assert theirs.stdout == own, (overlay.name, own, theirs.stdout)
    assert moves[str(Path(sys.prefix).resolve())] == str(venv)
    runtime = UserRuntime(venv, REPO, moves)
    assert runtime.program(f"{sys.prefix}/bin/dask") == f"{venv}/bin/dask"
    with pytest.raises(RuntimeError_, match="has no copy"):
        runtime.program("/usr/bin/python3")


@needs_root
def test_accounts_cli_lists_and_removes_only_idle_platform_accounts(test_prefix, open_tmp):
    acc = SystemAccounts(test_prefix, open_tmp / "users")
    (open_tmp / "users").mkdir()
    entry = acc.ensure("frank")
    cli = [sys.executable, "-m", "platform_lib.cli", "accounts"]
    listed = subprocess.run([*cli, "list"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and f"{test_prefix}frank" in listed.stdout, listed
    busy = subprocess.Popen(
        ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
        + ["sleep", "60"]
    )
    try:
        time.sleep(0.5)
        refused = subprocess.run(
            [*cli, "remove", entry.pw_name], capture_output=True, text=True, timeout=60
        )
        assert refused.returncode == 1 and "still runs 1 process" in refused.stderr, refused
        assert pwd.getpwnam(entry.pw_name)
    finally:
        busy.kill()
        busy.wait()
    foreign = subprocess.run([*cli, "remove", "root"], capture_output=True, text=True, timeout=60)
    assert foreign.returncode == 1 and "not made by the platform" in foreign.stderr
    done = subprocess.run(
        [*cli, "remove", entry.pw_name], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    with pytest.raises(KeyError):
        pwd.getpwnam(entry.pw_name)
