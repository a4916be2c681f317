"""Per-user system accounts on one machine, the way The Littlest JupyterHub does it.

When the platform runs as root, every hub user gets a system account (``roman-<name>``, made on
the user's first server or Dask cluster), and their server, kernels, Dask scheduler and workers
run as that account (:mod:`hub_config.local.spawner`, :mod:`hub_config.gateway.local`). The
user's home is theirs alone (0700, owned by the account); the platform's secrets, databases and
logs stay 0600/0700 root's. Without root, or where the state folder cannot be reached by other
accounts, the platform runs everything as its own account and says so (single-account mode).

An account is recognised as the platform's by its comment (GECOS) field: a hub user whose name
maps onto an existing account the platform did not make (``roman-admin`` made by someone else)
is refused rather than given that account's files. Creation is serialised by a lock, since the
hub and the gateway may both make the same user's account at once.
"""

from __future__ import annotations

import fcntl
import grp
import hashlib
import os
import pwd
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hub_config.naming import user_folder_name

if TYPE_CHECKING:
    from hub_config.local.state import StateDir
    from hub_config.local.user_runtime import UserRuntime
    from hub_config.settings import AccountsSettings

#: The comment that marks an account as made by the platform for a hub user.
MARKER = "roman-platform user"
#: useradd's limit on a user name.
MAX_NAME = 32
NAME_OK = re.compile(r"^[a-z_][a-z0-9_-]*$")
LOCK_FILE = Path("/run/lock/roman-platform-accounts.lock")


class AccountError(RuntimeError):
    """An account cannot be made or used; ``str()`` is meant for the operator."""


@dataclass(frozen=True)
class SystemAccounts:
    """How hub users map to system accounts, and where their homes are."""

    prefix: str
    homes: Path  # one folder per user inside (the state folder's users/)

    def name(self, hub_user: str) -> str:
        """The account of ``hub_user``: prefix + a name useradd accepts, unique per hub user.

        Lower-case letters, digits, ``_`` and ``-`` are kept; anything else, or a name too long
        for useradd, is replaced by a hash (two hub users never share an account)."""
        folder = user_folder_name(hub_user)
        base = re.sub(r"[^a-z0-9_-]", "-", folder.lower())
        candidate = f"{self.prefix}{base}"
        if base != folder or len(candidate) > MAX_NAME or not NAME_OK.match(candidate):
            digest = hashlib.sha256(hub_user.encode()).hexdigest()[:10]
            keep = MAX_NAME - len(self.prefix) - len(digest) - 1
            candidate = f"{self.prefix}{base[:keep].strip('-')}-{digest}".replace("--", "-")
        if not NAME_OK.match(candidate):
            raise AccountError(f"no valid account name for hub user {hub_user!r}")
        return candidate

    def home(self, hub_user: str) -> Path:
        return self.homes / user_folder_name(hub_user)

    def ensure(self, hub_user: str) -> pwd.struct_passwd:
        """The account of ``hub_user``, made if missing, with its home (0700, its own)."""
        name = self.name(hub_user)
        home = self.home(hub_user)
        LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                entry = self._create(name, hub_user, home)
            if not entry.pw_gecos.startswith(MARKER):
                raise AccountError(
                    f"system account {name} exists but was not made by the platform "
                    f"(comment {entry.pw_gecos!r}); hub user {hub_user!r} cannot use it"
                )
            if entry.pw_uid == 0 or entry.pw_gid == 0:
                raise AccountError(f"system account {name} has uid/gid 0; refusing to use it")
            self._make_home(home, entry)
            return entry
        finally:
            os.close(fd)

    def _create(self, name: str, hub_user: str, home: Path) -> pwd.struct_passwd:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        cmd = [
            useradd,
            "--system",  # no aging, no mail spool; a uid from the system range
            "--user-group",
            "--no-create-home",  # made below, inside the state folder
            "--home-dir",
            str(home),
            "--shell",
            "/usr/sbin/nologin",  # no password and no login shell: reached only via the hub
            "--comment",
            f"{MARKER} {user_folder_name(hub_user)}",
            name,
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise AccountError(f"cannot create system account {name}: {result.stderr.strip()}")
        return pwd.getpwnam(name)

    @staticmethod
    def _make_home(home: Path, entry: pwd.struct_passwd) -> None:
        home.mkdir(mode=0o700, exist_ok=True)
        st = home.lstat()
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            raise AccountError(f"home {home} is not a folder")
        if (st.st_uid, st.st_gid) != (entry.pw_uid, entry.pw_gid):
            # A home from single-account mode (owned by the platform): hand it over whole.
            for dirpath, dirs, files in os.walk(home):
                for n in (*dirs, *files):
                    os.lchown(os.path.join(dirpath, n), entry.pw_uid, entry.pw_gid)
            os.chown(home, entry.pw_uid, entry.pw_gid)
        os.chmod(home, 0o700)

    def groups(self, entry: pwd.struct_passwd) -> list[int]:
        """Supplementary groups of the account (only its own by construction)."""
        return sorted(
            {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem}
        )


def drop_privileges(entry: pwd.struct_passwd, groups: list[int], workdir: str) -> None:
    """In a child before exec: become the account for good, in its own folder, files private.

    The order matters: groups and gid while still root, the uid last (after it nothing can be
    changed back). Raises in the child, which then fails to exec (the hub reports a failed
    start), rather than running as root."""
    os.setgroups(groups)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise PermissionError("still root after setuid")
    os.umask(0o077)
    os.chdir(workdir)


def unavailable_reason(state_root: Path) -> str | None:
    """Why per-user accounts cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "not running as root"
    if not shutil.which("useradd") and not Path("/usr/sbin/useradd").exists():
        return "useradd is not installed"
    for p in (state_root.resolve(), *state_root.resolve().parents):
        if p.exists() and p != state_root.resolve() and not (p.stat().st_mode & 0o001):
            return (
                f"the state folder is inside {p} (mode {stat.S_IMODE(p.stat().st_mode):o}), "
                "which other accounts cannot enter; choose a --state-dir outside it"
            )
    return None


def open_state(state_root: Path, subfolders: list[Path], survey: Path | None = None) -> None:
    """Let accounts pass through the state folder to their homes and Dask working folders
    (0711: enter, not list); everything else in it stays 0600/0700, except the folder survey
    (``data.store: folder``), which every account reads (0755, root's: read-only to them)."""
    for p in (state_root, *subfolders):
        os.chmod(p, 0o711)
    if survey is not None and survey.is_dir():
        os.chmod(survey, 0o755)


def resolve_accounts(
    mode: str,
    prefix: str,
    runtime_dir: Path,
    state: StateDir,
    repo: Path,
) -> AccountsSettings:
    """Decide the account mode for one start; in system mode make the user runtime too.

    ``mode`` is the configuration's: ``system`` fails with the reason where it cannot be done,
    ``auto`` falls back to ``shared`` with the reason (the banner prints it)."""
    from hub_config.settings import AccountsSettings

    if mode == "shared":
        return AccountsSettings(mode="shared", reason="accounts.mode is shared")
    state_root = state.root
    reason = unavailable_reason(state_root)
    if reason is not None:
        if mode == "system":
            raise AccountError(f"accounts.mode is system but {reason}")
        return AccountsSettings(mode="shared", reason=reason)
    from hub_config.local.user_runtime import (
        UserRuntime,
        check_runtime,
        ensure_runtime,
        project_copy,
    )

    folder, moves = ensure_runtime(runtime_dir)
    project = project_copy(repo, state_root / "runtime-src")
    runtime = UserRuntime(folder / "venv", project, moves)
    open_state(
        state_root,
        [state.users_dir, state.gateway_dir, state.gateway_dir / "clusters"],
        survey=state.data_dir,
    )
    check_runtime(runtime, "nobody")
    return AccountsSettings(
        mode="system",
        prefix=prefix,
        homes=str(state.users_dir),
        runtime_venv=str(runtime.venv),
        runtime_project=str(project),
        moves=moves,
    )


def from_settings(accounts: AccountsSettings | None) -> tuple[SystemAccounts, UserRuntime] | None:
    """The accounts and runtime of a system-mode start, None in single-account mode."""
    if accounts is None or accounts.mode != "system":
        return None
    from hub_config.local.user_runtime import UserRuntime

    return (
        SystemAccounts(accounts.prefix, Path(accounts.homes)),
        UserRuntime(
            Path(accounts.runtime_venv), Path(accounts.runtime_project), dict(accounts.moves)
        ),
    )


def platform_accounts() -> list[pwd.struct_passwd]:
    """Every system account the platform made (its comment), by name."""
    return sorted(
        (e for e in pwd.getpwall() if e.pw_gecos.startswith(MARKER)), key=lambda e: e.pw_name
    )


def account_processes(entry: pwd.struct_passwd) -> list[int]:
    """The pids of processes running as ``entry`` (a server, a kernel, a Dask worker)."""
    import psutil

    pids = []
    for proc in psutil.process_iter(["uids"]):
        try:
            if proc.info["uids"] and entry.pw_uid in proc.info["uids"]:
                pids.append(proc.pid)
        except psutil.Error:
            continue
    return sorted(pids)


def remove_account(name: str) -> None:
    """Remove one of the platform's accounts (``userdel``); its homes stay with their state
    folders. Refused for an account the platform did not make, or while anything runs as it
    (a server or cluster would be left running under a uid a later account could get)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise AccountError(f"no system account {name}") from None
    if not entry.pw_gecos.startswith(MARKER):
        raise AccountError(f"{name} was not made by the platform (comment {entry.pw_gecos!r})")
    running = account_processes(entry)
    if running:
        raise AccountError(
            f"{name} still runs {len(running)} process(es) (pids {', '.join(map(str, running[:8]))}"
            f"{' ...' if len(running) > 8 else ''}); stop the user's server and clusters first"
        )
    userdel = shutil.which("userdel") or "/usr/sbin/userdel"
    result = subprocess.run([userdel, name], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AccountError(f"cannot remove {name}: {result.stderr.strip()}")
