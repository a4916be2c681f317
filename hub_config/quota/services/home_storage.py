"""Home storage measured against the allocation, on the local platform.

Allocations carry ``home_gb``. On Kubernetes the home volume's size is the limit and the volume
enforces it. On one machine the homes are folders (``<state>/users/<name>``, the local
spawner's ``users_dir``), so the quota service measures them: the disk space each one takes
(allocated blocks, as ``du`` counts them, hard links once), without following symbolic links or
leaving the folder's filesystem. Each pass is bounded in time and entries. A walk cut short is
stored with ``complete=False`` and its partial figure (a lower bound). The result is shown to
the user (``/api/me``: ``storage``) and to platform admins; nothing is ever deleted or blocked,
because a user over their allocation must still be able to start a server to clean up.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from dataclasses import dataclass
from urllib.parse import unquote

from sqlalchemy.orm import Session, sessionmaker

from hub_config.naming import user_folder_name
from hub_config.quota.storage.models import StorageUsage, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TreeSize:
    bytes: int
    files: int
    complete: bool


def measure_tree(root: str, *, deadline: float, max_entries: int) -> TreeSize:
    """Disk space under ``root`` until ``deadline`` (``time.monotonic``) or ``max_entries``."""
    total = files = entries = 0
    seen: set[tuple[int, int]] = set()
    try:
        device = os.lstat(root).st_dev
    except OSError:
        return TreeSize(0, 0, False)
    stack = [root]
    while stack:
        path = stack.pop()
        try:
            it = os.scandir(path)
        except OSError:
            continue  # unreadable or vanished: measured as what could be read
        with it:
            for entry in it:
                entries += 1
                if entries > max_entries or time.monotonic() > deadline:
                    return TreeSize(total, files, False)
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if st.st_dev == device:
                        stack.append(entry.path)
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue  # symbolic links (never followed), sockets, FIFOs
                if (st.st_dev, st.st_ino) in seen:
                    continue
                if st.st_nlink > 1:
                    seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
                files += 1
    return TreeSize(total, files, True)


class HomeStorageSampler:
    """Measures every user's home folder under ``users_dir`` into ``storage_usage``."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        users_dir: str,
        *,
        seconds_per_pass: float = 60.0,
        max_entries_per_home: int = 2_000_000,
    ):
        self.sessions, self.users_dir = sessions, users_dir
        self.seconds_per_pass, self.max_entries = seconds_per_pass, max_entries_per_home

    def homes(self) -> dict[str, str]:
        """username -> folder, for the folders the local spawner names (see user_folder_name)."""
        out: dict[str, str] = {}
        try:
            names = os.listdir(self.users_dir)
        except OSError:
            return out
        for name in sorted(names):
            path = os.path.join(self.users_dir, name)
            user = unquote(name)
            if os.path.isdir(path) and not os.path.islink(path) and user_folder_name(user) == name:
                out[user] = path
        return out

    def sample_once(self) -> dict[str, TreeSize]:
        """One pass over all homes, sharing the pass's time bound; returns what it measured."""
        deadline = time.monotonic() + self.seconds_per_pass
        measured = {}
        for user, path in self.homes().items():
            measured[user] = measure_tree(path, deadline=deadline, max_entries=self.max_entries)
        now = utcnow()
        with self.sessions() as s:
            for user, size in measured.items():
                row = s.get(StorageUsage, user) or StorageUsage(username=user)
                row.home_bytes, row.files = size.bytes, size.files
                row.complete, row.measured_at = size.complete, now
                s.add(row)
            s.commit()
        if any(not m.complete for m in measured.values()):
            log.warning(
                "storage pass cut short after %.0f s: some homes are lower bounds",
                self.seconds_per_pass,
            )
        return measured


def storage_view(s: Session, username: str, home_gb: float | None) -> dict | None:
    """What ``/api/me`` shows: the last measurement against the allocation's ``home_gb``."""
    row = s.get(StorageUsage, username)
    if row is None:
        return None
    used_gb = row.home_bytes / 1e9
    return {
        "home_used_gb": round(used_gb, 3),
        "home_allocated_gb": home_gb,
        "files": row.files,
        "complete": row.complete,
        "measured_at": row.measured_at.isoformat() + "Z",
        "over_allocation": bool(home_gb is not None and used_gb > home_gb),
    }
