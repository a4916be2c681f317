"""The SeaweedFS launcher: loopback only, telemetry off, files in its folder, clean stop."""

from __future__ import annotations

from pathlib import Path

import psutil


def test_launcher_binds_loopback_only_and_keeps_files_in_its_folder(tmp_path):
    from hub_config.local.seaweedfs import SeaweedFS

    store = SeaweedFS(tmp_path / "weed", buckets=("one", "two"))
    with store:
        proc = psutil.Process(store._proc.pid)
        cmdline = proc.cmdline()
        assert "-master.telemetry=false" in cmdline and "-ip.bind=127.0.0.1" in cmdline
        listening = [
            c.laddr for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
        ]
        assert listening and all(addr.ip == "127.0.0.1" for addr in listening)
        assert store.s3_port in {addr.port for addr in listening}
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True, **store.storage_options())
        assert {"one", "two"} <= {b.rstrip("/") for b in fs.ls("")}
        env = store.client_env(prefix="p")
        assert (
            env["ROMAN_DATA_URL"] == "s3://one/p"
            and env["ROMAN_DATA_S3_ENDPOINT"] == store.endpoint_url
        )
        sockets = list(store._grpc_sockets)
    assert not store.running and not proc.is_running()
    assert (tmp_path / "weed" / "logs").is_dir() and (tmp_path / "weed" / "data").is_dir()
    assert not any(Path(s).exists() for s in sockets)


def test_data_persist_across_restart(tmp_path):
    import s3fs

    from hub_config.local.seaweedfs import SeaweedFS

    folder = tmp_path / "weed"
    first = SeaweedFS(folder, buckets=("keep-me",))
    with first:
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **first.storage_options())
        fs.pipe("keep-me/k.txt", b"kept")
    again = SeaweedFS(folder, access_key=first.access_key, secret_key=first.secret_key)
    with again:
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **again.storage_options())
        assert fs.cat("keep-me/k.txt") == b"kept"
