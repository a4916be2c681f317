"""The state folder: everything the local platform must keep between runs, in one private place.

Hub database, cookie secret, proxy token, gateway database and its encryption key, service API
tokens, the demo password and every user's working folder live here, so that stopping and
starting the platform keeps users, their server records and their files, and deleting the folder
is a complete reset. The folder and every secret are created private to this OS user (0700 /
0600) before anything is written into them.
"""

from __future__ import annotations

import base64
import fcntl
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path


class StateError(RuntimeError):
    """The state folder cannot be created or is not usable."""


def _token_hex() -> str:
    return secrets.token_hex(32)


class StateDir:
    """Paths and secrets inside one state folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()

    # ------------------------------------------------------------------ layout
    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def users_dir(self) -> Path:
        return self.root / "users"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def gateway_dir(self) -> Path:
        return self.root / "gateway"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def settings_file(self) -> Path:
        return self.root / "settings.json"

    @property
    def hub_db(self) -> Path:
        return self.root / "jupyterhub.sqlite"

    @property
    def gateway_db(self) -> Path:
        return self.gateway_dir / "gateway.sqlite"

    def user_dir(self, username: str) -> Path:
        return self.users_dir / username

    # ------------------------------------------------------------------ creation
    def create(self) -> None:
        """Create the folder tree with private permissions (tightening an existing folder)."""
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not self.root.is_dir():
                raise StateError(f"state folder {self.root} is not a directory")
            os.chmod(self.root, 0o700)
            for sub in (
                self.secrets_dir,
                self.users_dir,
                self.logs_dir,
                self.gateway_dir,
                self.gateway_dir / "clusters",
                self.data_dir,
            ):
                sub.mkdir(mode=0o700, exist_ok=True)
                os.chmod(sub, 0o700)
            # The databases (hub, quota, gateway, their -wal/-shm) are created by the children
            # under the umask `up` sets (077); tighten those an older run left behind.
            for db in (*self.root.glob("*.sqlite*"), *self.gateway_dir.glob("*.sqlite*")):
                if db.is_file() and not db.is_symlink():
                    os.chmod(db, 0o600)
        except OSError as exc:
            raise StateError(f"cannot create state folder {self.root}: {exc}") from None

    def lock(self) -> int:
        """Hold the folder for this process (one platform per state folder), or StateError.

        Two platforms on one hub database corrupt each other's view of servers and proxies; the
        lock is released by the OS when the process exits, however it exits.
        """
        path = self.root / "platform.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StateError(
                f"state folder {self.root} is in use by another running platform (pid {holder}); "
                "stop it first or use another --state-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return fd

    def secret(self, name: str, make: Callable[[], str] = _token_hex) -> str:
        """A named secret, generated once (0600) and read back on every later run."""
        path = self.secrets_dir / name
        if path.exists():
            value = path.read_text(encoding="utf-8").strip()
            if value:
                if stat.S_IMODE(path.stat().st_mode) & 0o077:
                    os.chmod(path, 0o600)
                return value
        value = make()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value + "\n")
        return value

    def cookie_secret_file(self) -> Path:
        """JupyterHub's cookie secret as the hex file it reads (it refuses group/world access)."""
        self.secret("jupyterhub_cookie_secret")
        return self.secrets_dir / "jupyterhub_cookie_secret"

    def gateway_encrypt_key(self) -> str:
        """Key that encrypts the TLS credentials dask-gateway stores in its database."""
        return self.secret(
            "gateway_encrypt_key", lambda: base64.b64encode(secrets.token_bytes(32)).decode()
        )

    def demo_password(self) -> str:
        return self.secret("demo_password", lambda: secrets.token_urlsafe(12))
