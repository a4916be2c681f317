"""The TAP service as the local platform runs it: where its PostgreSQL cluster lives, a state
folder reset, and an index that changes after start.

Run as root (as CI and ``make up`` on a fresh machine are), PostgreSQL runs as the ``postgres``
account, which cannot enter the platform's private state folder; the platform gives the cluster
a folder under ``postgres``'s home instead (``platform_pg_dir``). A reset state folder (``make
clean-state``: a new TAP secret) meets the old cluster there, whose passwords are stale: the
service must start afresh on it, not fail. The sample survey is made in the background after the
platform starts, so the component publishes the store's index again whenever it changes. Real
DaCHS and PostgreSQL, as tests/data/test_tap.py.
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


def test_a_private_state_folder_and_its_reset(tmp_path, monkeypatch) -> None:
    import subprocess

    import hub_config.tap.service as tap_module
    from hub_config.local.tap_platform import platform_pg_dir
    from hub_config.tap.service import TapService, dachs_available

    commands: list[str] = []
    real_run = subprocess.run

    def run(cmd, *args, **kwargs):  # every command line the service starts, as `ps` shows it
        commands.append(" ".join(map(str, cmd)))
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(tap_module.subprocess, "run", run)

    missing = dachs_available()
    if missing:
        pytest.fail(f"{missing}: run scripts/system-deps.sh")
    state = tmp_path / "state"  # pytest's folders are private to root, as the state folder is
    state.mkdir(mode=0o700)
    pg_dir = platform_pg_dir(state)
    if os.geteuid() == 0:  # PostgreSQL runs as postgres: its cluster outside the state folder
        assert pg_dir is not None and not str(pg_dir).startswith(str(tmp_path))
    else:  # everything runs as this account: the cluster stays in <state>/tap/pg
        assert pg_dir is None
    cluster = pg_dir or state / "tap" / "pg"
    try:
        with TapService(state / "tap", secret=secrets.token_urlsafe(16), pg_dir=pg_dir) as tap:
            assert _rows(tap) == 0
            password = tap._pg_password
        assert any(c.startswith("dachs init") for c in commands)
        # no local account may read the database superuser's password in the process list
        assert not [c for c in commands if password in c]
        assert (cluster / "data").is_dir()
        assert (state / "tap" / "pg-cluster").read_text().strip() == str(cluster)
        shutil.rmtree(state / "tap")  # the state folder reset: a new secret next time
        with TapService(state / "tap", secret=secrets.token_urlsafe(16), pg_dir=pg_dir) as tap:
            assert _rows(tap) == 0
    finally:
        if pg_dir is not None:
            shutil.rmtree(pg_dir, ignore_errors=True)


def test_an_index_made_after_start_reaches_obscore(tmp_path) -> None:
    from astropy.time import Time

    from hub_config.local.tap_platform import TapComponent, platform_pg_dir
    from hub_config.tap.service import TapService, dachs_available
    from platform_lib import env_contract
    from platform_lib.data.index import build_index
    from platform_lib.sample import make_exposure

    missing = dachs_available()
    if missing:
        pytest.fail(f"{missing}: run scripts/system-deps.sh")
    state, store = tmp_path / "state", tmp_path / "store"
    state.mkdir(mode=0o700)
    (store / "L2").mkdir(parents=True)
    pg_dir = platform_pg_dir(state)
    service = TapService(state / "tap", secret=secrets.token_urlsafe(16), pg_dir=pg_dir)
    component = TapComponent(service, {env_contract.DATA_URL: str(store)})
    try:
        component.start()
        component.wait_ready(120)
        assert _rows(service) == 0  # no index yet: nothing published, nothing failed
        for exposure in (1, 2):  # as `roman-platform data sample` does later, in the background
            _, l2 = make_exposure(
                "WFI01",
                "F158",
                270.0,
                66.0,
                Time("2027-03-01"),
                program=7,
                visit=1,
                exposure=exposure,
                size=16,
                seed=exposure,
            )
            l2.save(store / "L2" / f"r0000701001{exposure:03d}_wfi01_f158_cal.asdf")
            build_index(str(store), progress=False)
            component._next_check = 0.0  # the next supervisor poll looks at the store
            component.refresh()
            assert _rows(service) == exposure
    finally:
        component.stop(30)
        if pg_dir is not None:
            shutil.rmtree(pg_dir, ignore_errors=True)
