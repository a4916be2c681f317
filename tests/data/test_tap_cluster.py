"""Where the platform's TAP PostgreSQL cluster lives, and a state folder reset.

Run as root (as CI and ``make up`` on a fresh machine are), PostgreSQL runs as the ``postgres``
account, which cannot enter the platform's private state folder; the platform gives the cluster
a folder under ``postgres``'s home instead (``platform_pg_dir``). A reset state folder (``make
clean-state``: a new TAP secret) meets the old cluster there, whose passwords are stale: the
service must start afresh on it, not fail. Real DaCHS and PostgreSQL, as tests/data/test_tap.py.
"""

from __future__ import annotations

import os
import secrets
import shutil

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]


def _rows(service) -> int:
    import pyvo

    t = pyvo.dal.TAPService(service.url).run_sync("SELECT COUNT(*) AS n FROM ivoa.obscore")
    return int(t.to_table()["n"][0])


@pytest.mark.skipif(os.geteuid() != 0, reason="the postgres account is only used when root")
def test_a_private_state_folder_and_its_reset(tmp_path) -> None:
    from hub_config.local.tap import TapService, dachs_available, platform_pg_dir

    missing = dachs_available()
    if missing:
        pytest.fail(f"{missing}: run scripts/system-deps.sh")
    state = tmp_path / "state"  # pytest's folders are private to root, as the state folder is
    state.mkdir(mode=0o700)
    pg_dir = platform_pg_dir(state)
    assert pg_dir is not None and not str(pg_dir).startswith(str(tmp_path))
    try:
        with TapService(state / "tap", secret=secrets.token_urlsafe(16), pg_dir=pg_dir) as tap:
            assert _rows(tap) == 0
        assert (pg_dir / "data").is_dir()
        assert (state / "tap" / "pg-cluster").read_text().strip() == str(pg_dir)
        shutil.rmtree(state / "tap")  # the state folder reset: a new secret next time
        with TapService(state / "tap", secret=secrets.token_urlsafe(16), pg_dir=pg_dir) as tap:
            assert _rows(tap) == 0
    finally:
        shutil.rmtree(pg_dir, ignore_errors=True)
