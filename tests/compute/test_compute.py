"""platform_lib.compute: the local path (the gateway path is proven by the platform tests)."""

from __future__ import annotations

import dask.array as da
import pytest

from platform_lib.compute import gateway_configured, get_client, map_with_progress


def _square(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x * x


def test_local_cluster_computes_and_reports_errors_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
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
