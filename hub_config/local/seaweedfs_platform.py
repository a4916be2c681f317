"""SeaweedFS in the local platform: the data store component, its buckets and the sample survey.

``roman-platform up`` runs :class:`~hub_config.local.seaweedfs.SeaweedFS` under
``<state>/seaweedfs`` as the first supervisor component (:func:`seaweedfs_component`) unless
``data.url`` names another store, with two buckets (the survey's, and users' and teams' writable
spaces), gives every user server the store's environment, hands the per-user identity settings
(:mod:`hub_config.local.s3_identities`) to the spawner and the gateway, and writes the sample
survey into a new store once it answers.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

from .seaweedfs import SeaweedFS

__all__ = ["PLATFORM_BUCKET", "WORK_BUCKET", "DataStoreComponent", "seaweedfs_component"]

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
