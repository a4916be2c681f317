"""Fixtures for the image tests: the images built for real by scripts/build-images.sh.

The build is the project's own script (Docker engine with host networking only, a Debian base
made with debootstrap, the wheelhouse from the locks); nothing here is a stand-in. Docker's layer
cache and the wheel cache make a rebuild with unchanged locks quick; the project's wheel layer is
rebuilt every time, so the images always hold this tree's code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "scripts" / "build-images.sh"
TAG = "test"
BUILD_TIMEOUT_S = 1500  # a cold notebook build (fresh wheelhouse and layers) takes about 5 min here


def project_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def docker(
    *args: str, timeout: float = 300, check: bool = True, **kw
) -> subprocess.CompletedProcess:
    """Run the docker CLI; on failure the error names the command and shows its output."""
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args[:4])} ... exited {proc.returncode}\n"
            f"stdout: {proc.stdout[-3000:]}\nstderr: {proc.stderr[-3000:]}"
        )
    return proc


def run_in(
    image: str,
    *cmd: str,
    volumes: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """``docker run --rm --network host`` (the only networking these machines allow)."""
    args = ["run", "--rm", "--network", "host"]
    for host, target in (volumes or {}).items():
        args += ["-v", f"{host}:{target}"]
    for k, v in (env or {}).items():
        args += ["-e", f"{k}={v}"]
    return docker(*args, image, *cmd, timeout=timeout, check=check)


def inspect(image: str) -> dict:
    return json.loads(docker("image", "inspect", image).stdout)[0]


def http_get(
    url: str, *, headers: dict[str, str] | None = None, timeout: float = 60.0
) -> tuple[int, bytes]:
    """GET ``url``, retrying while nothing answers yet (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last = exc
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {timeout:.0f} s: {last}")


class Helpers:
    """The helpers above, handed to tests as the ``dk`` fixture (pytest's importlib mode makes
    importing from a conftest unreliable)."""

    docker = staticmethod(docker)
    run_in = staticmethod(run_in)
    inspect = staticmethod(inspect)
    http_get = staticmethod(http_get)
    project_version = staticmethod(project_version)
    repo = REPO


@pytest.fixture(scope="session")
def dk() -> type[Helpers]:
    return Helpers


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[None]:
    """Stops, at the end, the Docker engine the build script had to start (and only that one)."""
    running = subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    yield
    if not running:
        subprocess.run(["bash", str(BUILD), "--stop-docker"], capture_output=True, timeout=120)


def _build(image: str) -> str:
    """Build ``image`` with the project's script; a failure or a build over its time shows the
    script's progress and the tail of Docker's timestamped log instead of a bare timeout."""
    t0 = time.monotonic()
    log = REPO / ".cache" / "images" / f"build-{image}.log"
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            ["bash", str(BUILD), "--tag", TAG, image],
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            cwd=REPO,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            rc = proc.wait(timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
            rc = None
        err.seek(0)
        progress = err.read()
    if rc != 0:
        what = f"exited {rc}" if rc is not None else f"did not finish in {BUILD_TIMEOUT_S} s"
        tail = log.read_text(errors="replace")[-4000:] if log.exists() else "(no build log)"
        raise AssertionError(
            f"build-images.sh {image} {what}\n--- its progress:\n{progress[-5000:]}"
            f"\n--- tail of {log}:\n{tail}"
        )
    name = f"roman-platform/{image}:{TAG}"
    print(f"\n{name}: built in {time.monotonic() - t0:.0f} s\n{progress[-600:]}")
    return name


@pytest.fixture(scope="session")
def hub_image(docker_engine: None) -> str:
    return _build("hub")


@pytest.fixture(scope="session")
def notebook_image(docker_engine: None) -> str:
    return _build("notebook")


@pytest.fixture(scope="session")
def tap_image(docker_engine: None, hub_image: str) -> str:
    """Built after the hub image: its first layers are the hub's, from Docker's cache."""
    return _build("tap")
