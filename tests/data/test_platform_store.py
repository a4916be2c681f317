"""The local platform's data store component (SeaweedFS in the state folder)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest


def _platform(tmp_path, **data):
    from hub_config.local.config import PlatformConfig
    from hub_config.local.state import StateDir

    state = StateDir(tmp_path / "state")
    state.create()
    config = PlatformConfig.model_validate({"data": data})
    # the two attributes of hub_config.local.resolve.Platform the factory uses, plus env
    return SimpleNamespace(config=config, state=state, user_env={}, child_env=dict)


def test_component_serves_the_user_environment(tmp_path):
    from hub_config.local.seaweedfs_platform import seaweedfs_component
    from platform_lib.data.store import get_store

    p = _platform(tmp_path, sample=False)
    component = seaweedfs_component(p)
    assert set(p.user_env) == {
        "ROMAN_DATA_URL",
        "ROMAN_DATA_S3_ENDPOINT",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }
    assert p.user_env["ROMAN_DATA_URL"] == "s3://roman"
    component.start()
    try:
        component.wait_ready(60)
        assert component.alive()
        env = p.user_env
        store = get_store(
            env["ROMAN_DATA_URL"],
            endpoint=env["ROMAN_DATA_S3_ENDPOINT"],
            key=env["AWS_ACCESS_KEY_ID"],
            secret=env["AWS_SECRET_ACCESS_KEY"],
        )
        store.write_bytes("hello.txt", b"first notebook")
        assert store.read_bytes("hello.txt") == b"first notebook"
        assert component._sample_proc is None
    finally:
        component.stop()
    assert not component.alive()
    # the keys are kept: a restart serves the same credentials
    again = _platform(tmp_path, sample=False)
    seaweedfs_component(again)
    assert again.user_env == p.user_env


@pytest.mark.parametrize("data", [{"url": "s3://elsewhere/x"}, {"store": "folder"}])
def test_no_component_when_another_store_is_configured(tmp_path, data):
    from hub_config.local.seaweedfs_platform import seaweedfs_component

    p = _platform(tmp_path, **data)
    assert seaweedfs_component(p) is None and p.user_env == {}


def test_first_start_launches_the_sample_and_stop_ends_it(tmp_path):
    import psutil

    from hub_config.local.seaweedfs_platform import seaweedfs_component

    p = _platform(tmp_path)  # sample: true (the default)
    component = seaweedfs_component(p)
    component.start()
    try:
        component.wait_ready(60)
        proc = component._sample_proc
        assert proc is not None and proc.poll() is None
        # /proc/<pid>/cmdline is empty while the child is still inside exec (seen once on a
        # loaded machine): read it again, for a bounded time
        deadline = time.monotonic() + 10
        cmd = psutil.Process(proc.pid).cmdline()
        while not cmd and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            cmd = psutil.Process(proc.pid).cmdline()
        assert cmd[-3:] == ["platform_lib.cli", "data", "sample"]
        assert psutil.Process(proc.pid).environ()["ROMAN_DATA_URL"] == "s3://roman"
    finally:
        component.stop()
    assert proc.poll() is not None  # stopped with the platform
    assert (p.state.logs_dir / "data-sample.log").exists()
