"""The TAP image, built for real: the hub's layers reused, and DaCHS answering TAP in containers.

The chart runs three pods from this image (PostgreSQL, DaCHS, the index publisher); here the same
commands run in containers on host networking (the only networking this machine allows), on
loopback ports, with the root filesystem read-only and DaCHS's folder a fresh tmpfs as in the
chart: PostgreSQL starts on an empty volume, DaCHS sets itself up against it and answers a sync
ADQL query, the publisher publishes a real store's index, and a second DaCHS container (a new pod
after a restart: new files, same database) serves the same rows.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_first_layers_are_the_hub_images(dk, hub_image, tap_image):
    """The tap Dockerfile starts with the hub's steps and the build hands them the hub's lock
    under the same name, so they are the hub build's layers (no second venv build in CI)."""
    hub = (REPO / "images" / "hub" / "Dockerfile").read_text().splitlines()
    tap = (REPO / "images" / "tap" / "Dockerfile").read_text().splitlines()
    start = next(i for i, line in enumerate(hub) if line.startswith("ARG BASE_IMAGE"))
    end = next(i for i, line in enumerate(hub) if line.startswith("COPY roman_science_platform"))
    t0 = tap.index(hub[start])
    assert tap[t0 : t0 + end - start] == hub[start:end], "keep images/tap's first steps the hub's"
    hub_layers = dk.inspect(hub_image)["RootFS"]["Layers"]
    tap_layers = dk.inspect(tap_image)["RootFS"]["Layers"]
    # base, Python + tini, the lock, the hub's venv
    assert tap_layers[:4] == hub_layers[:4]
    info = dk.inspect(tap_image)
    assert info["Config"]["User"] == "1000:1000"
    # images/README.md's size budget (a Debian dependency that grows shows here first)
    assert info["Size"] <= 2.5e9, f"{info['Size'] / 1e9:.2f} GB is over the 2.5 GB budget"
    assert info["Config"]["Labels"]["org.opencontainers.image.version"] == dk.project_version()


def test_what_the_three_pods_run_is_installed(dk, tap_image):
    out = dk.run_in(
        tap_image,
        "bash",
        "-c",
        "python -c 'import hub_config.tap.cluster, hub_config.tap.proxy,"
        " platform_lib.data.index, platform_lib.data.obscore, platform_lib.data.l5,"
        ' psycopg, s3fs, pyarrow; print("venv ok")\''
        " && /usr/bin/python3 -c 'import gavo.user.cli; print(\"dachs ok\")'"
        " && ls /usr/share/postgresql/15/extension/pg_sphere.control"
        " && python -m hub_config.tap.cluster --help",
    ).stdout
    assert "venv ok" in out and "dachs ok" in out and "pg_sphere.control" in out
    for command in ("postgres", "dachs", "publish"):
        assert command in out


def _small_store(root: Path) -> int:
    """A store with an index (the sample survey's L4 products, made for real): its row count."""
    from platform_lib.data.index import build_index, load_index
    from platform_lib.sample import make_l4_products

    make_l4_products(str(root / "L4"), "field7_f158", 80.5, -69.5)
    build_index(str(root), progress=False)
    return len(load_index(str(root)))


def test_dachs_answers_tap_over_its_postgres_and_a_new_pod_serves_the_same(dk, tap_image, tmp_path):
    import pyvo

    pg_port, dachs_port = _free_port(), _free_port()
    run_id = uuid.uuid4().hex[:8]
    names = {k: f"roman-tap-test-{k}-{run_id}" for k in ("pg", "dachs", "dachs2")}
    password, secret = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
    pgdata = tmp_path / "pg"
    pgdata.mkdir()
    pgdata.chmod(0o777)  # the image's uid 1000 makes its cluster in it
    store = tmp_path / "store"
    n = _small_store(store)
    assert n > 0
    store.chmod(0o755)
    db_env = {
        "ROMAN_TAP_PG_URL": f"postgresql://postgres@127.0.0.1:{pg_port}/gavo",
        "ROMAN_TAP_PG_PASSWORD": password,
    }
    # the chart's pods: read-only root, writable only what is mounted
    locked = ["--read-only", "--tmpfs", "/tmp:uid=1000,gid=1000"]

    def start(name: str, *args: str, env: dict[str, str], extra: list[str] = ()) -> None:
        cmd = ["run", "-d", "--name", name, "--network", "host", *locked, *extra]
        for k, v in env.items():
            cmd += ["-e", f"{k}={v}"]
        dk.docker(*cmd, tap_image, "python", "-m", "hub_config.tap.cluster", *args)

    def logs(name: str) -> str:
        proc = dk.docker("logs", "--tail", "60", name, check=False)
        return (proc.stdout + proc.stderr)[-4000:]

    def dachs(name: str) -> None:
        start(
            name,
            "dachs",
            "--bind",
            "127.0.0.1",
            "--port",
            str(dachs_port),
            "--root",
            "/var/lib/roman-tap",
            env={
                **db_env,
                "ROMAN_TAP_SECRET": secret,
                "ROMAN_TAP_DACHS_URL": f"http://127.0.0.1:{dachs_port}",
                "MPLCONFIGDIR": "/tmp/matplotlib",
            },
            extra=["--tmpfs", "/var/lib/roman-tap:uid=1000,gid=1000"],
        )
        try:
            status, body = dk.http_get(
                f"http://127.0.0.1:{dachs_port}/tap/capabilities", timeout=300
            )
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n--- {name}:\n{logs(name)}") from None
        assert status == 200 and b"capabilities" in body, body[:500]

    def count() -> int:
        tap = pyvo.dal.TAPService(f"http://127.0.0.1:{dachs_port}/tap")
        return int(tap.run_sync("SELECT COUNT(*) AS n FROM ivoa.obscore").to_table()["n"][0])

    try:
        start(
            names["pg"],
            "postgres",
            "--listen",
            "127.0.0.1",
            "--port",
            str(pg_port),
            "--data",
            "/var/lib/postgresql/data/pgdata",
            env={"ROMAN_TAP_PG_PASSWORD": password},
            extra=["-v", f"{pgdata}:/var/lib/postgresql/data", "--shm-size", "256m"],
        )
        t0 = time.monotonic()
        dachs(names["dachs"])
        first_start = time.monotonic() - t0
        assert count() == 0  # set up, nothing published yet
        out = dk.run_in(
            tap_image,
            "python",
            "-m",
            "hub_config.tap.cluster",
            "publish",
            "--once",
            volumes={str(store): "/data/roman:ro"},
            env={**db_env, "ROMAN_DATA_URL": "/data/roman", "HOME": "/tmp"},
            timeout=300,
        ).stdout
        assert f"published {n}" in out, out
        assert count() == n
        # a new pod: DaCHS's files are gone, the database is the same one
        dk.docker("rm", "-f", names["dachs"])
        t0 = time.monotonic()
        dachs(names["dachs2"])
        print(
            f"\nDaCHS first start {first_start:.0f} s, on a set-up database {time.monotonic() - t0:.0f} s"
        )
        assert count() == n
        # an async job: DaCHS's runner is a process of its own in the read-only pod
        tap = pyvo.dal.TAPService(f"http://127.0.0.1:{dachs_port}/tap")
        rows = tap.run_async("SELECT COUNT(*) AS n FROM ivoa.obscore", maxrec=10).to_table()
        assert int(rows["n"][0]) == n
        # a wrong database password is refused with the reason, not retried for ever
        bad = dk.run_in(
            tap_image,
            "python",
            "-m",
            "hub_config.tap.cluster",
            "publish",
            "--once",
            env={**db_env, "ROMAN_TAP_PG_PASSWORD": "wrong", "ROMAN_DATA_URL": "/tmp"},
            check=False,
        )
        assert "password authentication failed" in bad.stdout + bad.stderr
    finally:
        for name in names.values():
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)
