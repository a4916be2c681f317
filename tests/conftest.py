"""Fixtures shared by every area's tests.

Everything here starts real components on 127.0.0.1 only, inside the test's own temporary
folders, and stops them on teardown. Area-specific fixtures live in ``tests/<area>/conftest.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LOCAL_BIN = REPO / ".local" / "bin"
if LOCAL_BIN.is_dir() and str(LOCAL_BIN) not in os.environ.get("PATH", ""):
    os.environ["PATH"] = f"{LOCAL_BIN}{os.pathsep}{os.environ.get('PATH', '')}"


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts connections on host:port, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.0f} s")


@pytest.fixture
def port() -> int:
    return free_port()


# --------------------------------------------------------------------------- PostgreSQL
def _pg_bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql; "
            "run scripts/system-deps.sh (Debian package 'postgresql')"
        )
    return found[-1].parent


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server (Debian's binaries) on a free loopback port.

    Yields a SQLAlchemy URL to an empty database. Runs as the unprivileged 'postgres' user when
    the tests run as root, because initdb refuses to run as root.
    """
    bindir = _pg_bindir()
    # Not under pytest's tmp folder: its parents are private to root, and the server runs as
    # the 'postgres' user, which must be able to reach its data folder.
    base = Path(tempfile.mkdtemp(prefix="roman-pg-"))
    base.chmod(0o755)
    datadir, sockdir = base / "data", base / "sock"
    sockdir.mkdir()
    pgport = free_port()
    as_root = os.geteuid() == 0

    def run(args: list[str]) -> None:
        cmd = args
        if as_root:
            cmd = ["runuser", "-u", "postgres", "--", *args]
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:1])} failed: {proc.stderr.strip()}")

    if as_root:
        shutil.chown(base, "postgres")
        shutil.chown(sockdir, "postgres")
    run(
        [str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
    )
    opts = f"-c listen_addresses=127.0.0.1 -c port={pgport} -c unix_socket_directories={sockdir} -c fsync=off"
    run(
        [
            str(bindir / "pg_ctl"),
            "-D",
            str(datadir),
            "-o",
            opts,
            "-l",
            str(base / "pg.log"),
            "-w",
            "start",
        ]
    )
    try:
        run(
            [
                str(bindir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(pgport),
                "-U",
                "postgres",
                "platform",
            ]
        )
        yield f"postgresql+psycopg://postgres@127.0.0.1:{pgport}/platform"
    finally:
        run([str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "fast", "-w", "stop"])
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------- Browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Headless Debian chromium driven by Playwright (its own browser download is unreachable)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError("Debian chromium not installed; run scripts/system-deps.sh")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


#: Where the documentation's screenshots go (``make screenshots`` sets it to
#: docs/_static/screenshots); unset, they are written under the test's tmp_path, so the step
#: runs, and can fail, in every test run.
DOCS_SCREENSHOTS_ENV = "ROMAN_DOCS_SCREENSHOTS"
_SCREENSHOT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def docs_screenshot(tmp_path: Path):
    """``shoot(page, name)``: save what the browser test sees as ``NAME.png`` for the docs.

    The documentation's screenshots (the team-admin guide's) are taken here, by the browser
    tests that drive the pages, never drawn. ``full_page`` captures below the fold too.
    """
    folder = Path(os.environ.get(DOCS_SCREENSHOTS_ENV) or tmp_path / "screenshots")

    def shoot(page, name: str, *, full_page: bool = True) -> Path:
        if not _SCREENSHOT_NAME.fullmatch(name):
            raise ValueError(f"screenshot name {name!r}: use lower-case letters, digits and '-'")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{name}.png"
        page.screenshot(path=str(target), full_page=full_page, animations="disabled")
        with target.open("rb") as f:
            assert f.read(8) == _PNG_MAGIC, f"{target} is not a PNG"
        return target

    return shoot


# --------------------------------------------------------------------------- S3 (SeaweedFS)
@pytest.fixture(scope="session")
def s3_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real S3 server (SeaweedFS ``weed mini`` on 127.0.0.1, static keys, bucket ``roman``).

    Yields the running ``hub_config.local.seaweedfs.SeaweedFS``: use ``.client_env()`` for the
    ROMAN_DATA_URL / ROMAN_DATA_S3_ENDPOINT / AWS_* environment, or ``.storage_options()`` for
    s3fs. Shared by the session: write under a prefix of your own (e.g. ``s3://roman/<area>/``).
    """
    from hub_config.local.seaweedfs import SeaweedFS

    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs"), buckets=("roman",)) as store:
        yield store
