"""The TAP database over the platform's life: upgrades that change the table, and replicas.

A real DaCHS on its own PostgreSQL (the one-machine set-up the chart's pods share): a database
set up with one table definition is started again with another, as after ``helm upgrade``, and
must serve the new column through TAP with every row (the L5 rows exist nowhere else), its row
policy and its removal records intact, even when the upgrade was interrupted half-way. And two
proxy replicas granting the same user at once must both succeed.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(900)]

RA, DEC = 10.0, -20.0
NEW_COLUMN = "roman_upgrade_probe"


def _row(name, level, *, visibility="public", team=None, owner=None):
    from platform_lib.data.obscore import obscore_row

    row = {
        "path": f"{'users/' + owner + '/l5' if owner else 'L2'}/{name}.asdf",
        "level": level,
        "product_type": "image",
        "optical_element": "F158",
        "s_region": f"POLYGON ICRS {RA - 0.01} {DEC - 0.01} {RA + 0.01} {DEC - 0.01} "
        f"{RA + 0.01} {DEC + 0.01} {RA - 0.01} {DEC + 0.01}",
        "ra_center": RA,
        "dec_center": DEC,
        "size": 4096,
    }
    extra = {"visibility": visibility, "team": team, "owner_name": owner} if owner else {}
    return obscore_row(row, f"s3://roman/{row['path']}", **extra)


def _names(service, user):
    import pyvo
    import requests

    session = requests.Session()
    session.auth = (user, service.password_for(user))
    rows = (
        pyvo.dal.TAPService(service.url, session=session)
        .search("SELECT obs_id FROM ivoa.obscore ORDER BY obs_id", maxrec=100)
        .to_table()
    )
    return [str(v) for v in rows["obs_id"]]


def _table_oid(service):
    with service.connect() as conn:
        return conn.execute("SELECT 'roman.products'::regclass::oid").fetchone()[0]


@pytest.fixture()
def service():
    from hub_config.tap.service import TapService, dachs_available

    missing = dachs_available()
    if missing:
        pytest.fail(f"{missing}: run scripts/system-deps.sh")
    base = Path(tempfile.mkdtemp(prefix="roman-tap-upgrade-"))
    base.chmod(0o755)  # PostgreSQL runs as the postgres account and must reach its folder
    svc = TapService(base / "tap")
    yield svc
    svc.stop()
    shutil.rmtree(base, ignore_errors=True)


def _changed_descriptor():
    from hub_config.tap.schema import RESOURCE_DESCRIPTOR

    marker = '    <index columns="s_region" method="GIST"/>'
    assert marker in RESOURCE_DESCRIPTOR
    column = f'    <column name="{NEW_COLUMN}" type="real" description="added by an upgrade"/>\n'
    return RESOURCE_DESCRIPTOR.replace(marker, column + marker)


def _fill(service):
    service.replace_products(
        [_row("survey_a", "L2"), _row("survey_b", "L2")], levels=("L1", "L2", "L3", "L4", "PSF")
    )
    service.grant("alice", ["lensing"])
    service.grant("bob", ["lensing"])
    service.grant("carol", [])
    service.add_product(_row("alice_private", "L5", visibility="private", owner="alice"))
    service.add_product(_row("alice_team", "L5", visibility="team", team="lensing", owner="alice"))
    gone = _row("alice_gone", "L5", visibility="public", owner="alice")
    service.add_product(gone)
    service.remove_product(gone["obs_publisher_did"], by="alice", reason="superseded")


SEEN = {
    "alice": ["alice_private", "alice_team", "survey_a", "survey_b"],
    "bob": ["alice_team", "survey_a", "survey_b"],
    "carol": ["survey_a", "survey_b"],
}


def _assert_upgraded(service):
    import pyvo
    import requests

    assert {u: _names(service, u) for u in SEEN} == SEEN  # every row, the policy intact
    session = requests.Session()
    session.auth = ("alice", service.password_for("alice"))
    tap = pyvo.dal.TAPService(service.url, session=session)
    probe = tap.search(f"SELECT {NEW_COLUMN}, obs_id FROM roman.products", maxrec=100).to_table()
    assert len(probe) == 4 and NEW_COLUMN in probe.colnames  # DaCHS knows the new column
    with service.connect() as conn:
        removed = conn.execute("SELECT removed_by, reason FROM roman.removals").fetchall()
        saved = conn.execute("SELECT to_regclass('roman.products_saved')").fetchone()[0]
    assert removed == [("alice", "superseded")] and saved is None


def test_a_changed_table_definition_is_applied_on_restart_with_every_row(service, monkeypatch):
    import hub_config.tap.service as service_module

    with service:
        _fill(service)
        assert {u: _names(service, u) for u in SEEN} == SEEN
    oid = _table_oid_after_restart(service)  # unchanged definition: the table is left alone
    monkeypatch.setattr(service_module, "RESOURCE_DESCRIPTOR", _changed_descriptor())
    with service:
        assert _table_oid(service) != oid  # imported again
        _assert_upgraded(service)
        unchanged = _table_oid(service)
    assert _table_oid_after_restart(service) == unchanged  # and only once


def _table_oid_after_restart(service):
    with service:
        return _table_oid(service)


def test_an_interrupted_upgrade_is_finished_by_the_next_start(service, monkeypatch):
    """DaCHS dropped and re-made the table, then the pod died: the rows wait in their copy."""
    import hub_config.tap.service as service_module
    from hub_config.tap.schema import TapError

    with service:
        _fill(service)
    monkeypatch.setattr(service_module, "RESOURCE_DESCRIPTOR", _changed_descriptor())
    real_cli = type(service)._dachs_cli

    def dies_after_import(self, *args, **kw):
        out = real_cli(self, *args, **kw)
        if args[:1] == ("imp",):
            raise TapError("killed after the import (test)")
        return out

    monkeypatch.setattr(type(service), "_dachs_cli", dies_after_import)
    with pytest.raises(TapError, match="killed after the import"):
        service.start()
    service._start_postgres()  # the failed start stopped it; look at what it left
    try:
        with service.connect() as conn:
            kept = conn.execute("SELECT count(*) FROM roman.products_saved").fetchone()[0]
            left = conn.execute("SELECT count(*) FROM roman.products").fetchone()[0]
    finally:
        service._stop_postgres()
    assert (kept, left) == (4, 0)  # the new table is empty; nothing is lost
    monkeypatch.setattr(type(service), "_dachs_cli", real_cli)
    with service:
        _assert_upgraded(service)


def test_two_replicas_granting_the_same_user_at_once_both_succeed(service):
    """The proxy's in-process lock covers one replica; the database's lock covers the others."""
    rounds, replicas = 12, 4
    errors: list[BaseException] = []
    with service:
        for n in range(rounds):
            user = f"newcomer{n}"
            barrier = threading.Barrier(replicas, timeout=30)

            def grant(teams, user=user, barrier=barrier):
                try:
                    barrier.wait()
                    service.grant(user, teams)
                except BaseException as exc:  # collected: a thread's failure fails the test
                    errors.append(exc)

            threads = [
                threading.Thread(target=grant, args=([f"team{i}"],)) for i in range(replicas)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert not any(t.is_alive() for t in threads)
        assert errors == []
        with service.connect() as conn:
            groups = conn.execute(
                "SELECT username, count(*) FROM dc.groups WHERE username LIKE 'newcomer%%'"
                " GROUP BY username"
            ).fetchall()
    # each account holds its own group and exactly one replica's team: the last grant wins whole
    assert sorted(groups) == sorted((f"newcomer{n}", 2) for n in range(rounds))
