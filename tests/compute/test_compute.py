"""platform_lib.compute: the local path (the gateway path is proven by the platform tests)."""

from __future__ import annotations

import dask.array as da
import pytest

from platform_lib.compute import gateway_configured, get_client, map_with_progress


def _square(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x * x


def test_local_cluster_computes_and_reports_errors_in_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DASK_GATEWAY__ADDRESS", raising=False)
    assert not gateway_configured()
    with get_client(n_workers=1, reuse=False) as client:
        assert len(client.scheduler_info()["workers"]) == 1
        x = da.ones((200, 200), chunks=50)
        assert client.compute(x.sum()).result() == 40000
        out = map_with_progress(client, _square, range(5))
    assert out[:3] == [0, 1, 4] and out[4] == 16
    assert isinstance(out[3], ValueError) and "three" in str(out[3])


def test_existing_client_is_reused_not_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASK_GATEWAY__ADDRESS", raising=False)
    with get_client(n_workers=1, reuse=False) as outer:
        with get_client() as inner:
            assert inner is outer
        assert outer.status == "running"


def _malloc_environment() -> dict[str, str | None]:
    import os

    return {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")}


def test_workers_keep_glibc_dynamic_mmap_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """distributed's default MALLOC_TRIM_THRESHOLD_ made the simulation 1.43x slower in workers
    (benchmarks/compute/bench_worker_malloc.py); the platform's Dask settings unset it, in the
    configuration file installed with the package and as defaults when platform_lib is used."""
    import subprocess
    import sys

    monkeypatch.delenv("DASK_GATEWAY__ADDRESS", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with get_client(n_workers=1, reuse=False) as client:
        (env,) = client.run(_malloc_environment).values()
    assert env["MALLOC_TRIM_THRESHOLD_"] is None
    assert env["OMP_NUM_THREADS"] == "1"  # distributed's other worker settings are untouched
    # The same settings file, read by dask itself (as a process that never imports platform_lib
    # reads it from {sys.prefix}/etc/dask), unsets the variable for a nanny's worker.
    from platform_lib.compute import DASK_CONFIG_FILE

    code = (
        "import dask.config, distributed.nanny as n;"
        "print(repr(n._get_env_variables('distributed.nanny.pre-spawn-environ')"
        ".get('MALLOC_TRIM_THRESHOLD_')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"DASK_CONFIG": str(DASK_CONFIG_FILE.parent), "PATH": ""},
    )
    assert out.stdout.strip() == "None", out.stderr


def _open_store() -> str:
    from platform_lib.data import get_store

    return get_store().url("")


def test_worker_without_store_settings_names_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker missing the data settings says which ones and where they should come from."""
    from distributed import Client, LocalCluster

    from platform_lib.data import DataStoreError

    monkeypatch.delenv("ROMAN_DATA_URL", raising=False)
    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        with pytest.raises(DataStoreError, match="ROMAN_DATA_URL") as err:
            client.submit(_open_store, pure=False).result(timeout=60)
        assert "Dask worker" in str(err.value) and "data_environment" in str(err.value)
        monkeypatch.setenv("ROMAN_DATA_URL", "s3://roman")
        monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
        with pytest.raises(DataStoreError, match="AWS_ACCESS_KEY_ID not set.*Dask worker"):
            client.submit(_open_store, pure=False).result(timeout=60)


def test_user_store_url_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    from platform_lib.compute import user_store_url

    monkeypatch.setenv("ROMAN_USER_STORE_URL", "s3://roman-users/users/ann")
    assert user_store_url("tutorials", "03/") == "s3://roman-users/users/ann/tutorials/03"
    monkeypatch.delenv("ROMAN_USER_STORE_URL")
    monkeypatch.setenv("ROMAN_DATA_URL", "s3://roman/")
    monkeypatch.setenv("JUPYTERHUB_USER", "bob")
    assert user_store_url() == "s3://roman/users/bob/"
    monkeypatch.delenv("ROMAN_DATA_URL")
    with pytest.raises(RuntimeError, match="ROMAN_USER_STORE_URL"):
        user_store_url()
