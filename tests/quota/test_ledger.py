"""Ledger integration on a real database, with a clock the test controls."""

from __future__ import annotations

import datetime as dt

import pytest

from hub_config.quota.services import ledger
from hub_config.quota.storage.models import Checkpoint, UsageRecord

T0 = dt.datetime(2026, 3, 1, 10, 0, 0)
STEP = 10.0  # seconds


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def server(started=T0, team=None, cores=2.0, stopped=None, key="hub:alice/"):
    return ledger.Running(
        key=key,
        kind="server",
        username="alice",
        team=team,
        cores=cores,
        gpus=0.0,
        started=started,
        stopped=stopped,
    )


def run(sessions, observed, now):
    with sessions() as s:
        out = ledger.integrate(s, "hub", observed, now, STEP)
        s.commit()
        return out


def core_hours(sessions, **kw):
    with sessions() as s:
        return ledger.totals(s, T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=1), **kw)[0]


def test_continuous_sampling_charges_run_time_and_stays_compact(sessions):
    for i in range(121):  # one hour of 30 s samples
        run(sessions, [server()], at(i * 30))
    assert abs(core_hours(sessions, username="alice") - 2.0 * 1.0) < 1e-9
    with sessions() as s:
        assert s.query(UsageRecord).count() == 1  # one stretch for the hour, not 120 rows


def test_restart_gap_is_charged_once_for_a_thing_still_running(sessions):
    run(sessions, [server()], at(0))
    run(sessions, [server()], at(10))
    # the sampler is down from 10 s to 600 s; the server keeps running (same start time)
    run(sessions, [server()], at(600))
    run(sessions, [server()], at(600))  # a duplicate pass at the same instant charges nothing
    assert abs(core_hours(sessions) - 2.0 * 600 / 3600) < 1e-9


def test_started_while_sampler_down_is_charged_from_its_start(sessions):
    run(sessions, [], at(0))
    run(sessions, [server(started=at(100))], at(400))
    assert abs(core_hours(sessions) - 2.0 * 300 / 3600) < 1e-9


def test_vanished_thing_is_charged_at_most_half_a_step(sessions):
    run(sessions, [server()], at(0))
    run(sessions, [server()], at(10))
    run(sessions, [], at(20))
    assert abs(core_hours(sessions) - 2.0 * 15 / 3600) < 1e-9
    with sessions() as s:
        assert s.query(Checkpoint).count() == 0
    run(sessions, [], at(1000))  # long after: nothing more
    assert abs(core_hours(sessions) - 2.0 * 15 / 3600) < 1e-9


def test_recorded_stop_time_is_exact_and_never_recharged(sessions):
    key = "gateway:c1:w1"

    def w(stopped=None):
        return ledger.Running(
            key=key,
            kind="worker",
            username="bob",
            team="lens",
            cores=4,
            gpus=1,
            started=at(5),
            stopped=stopped,
        )

    with sessions() as s:
        ledger.integrate(s, "gateway", [w()], at(10), STEP)
        ledger.integrate(s, "gateway", [w(stopped=at(17))], at(20), STEP)
        ledger.integrate(s, "gateway", [w(stopped=at(17))], at(30), STEP)  # still listed
        s.commit()
        c, g = ledger.totals(s, T0, at(3600), team="lens")
    assert abs(c - 4 * 12 / 3600) < 1e-9 and abs(g - 12 / 3600) < 1e-9


def test_key_reused_by_a_new_instance(sessions):
    run(sessions, [server()], at(0))
    run(sessions, [server(started=at(50))], at(60))  # restarted at 50 s between samples
    # old instance: half of one step (5 s); new one: 50 s -> 60 s
    assert abs(core_hours(sessions) - 2.0 * 15 / 3600) < 1e-9


def test_hour_boundaries_and_team_attribution(sessions):
    start = T0 + dt.timedelta(minutes=50)
    for i in range(121):  # 50 min .. 70 min
        run(sessions, [server(started=start, team="lens")], start + dt.timedelta(seconds=10 * i))
    assert abs(core_hours(sessions, team="lens") - 2.0 * 20 / 60) < 1e-9
    assert core_hours(sessions, team=None) == 0.0
    with sessions() as s:
        assert s.query(UsageRecord).count() == 2  # split at 11:00
        # a period edge inside a stretch is prorated
        c, _ = ledger.totals(
            s, T0 + dt.timedelta(minutes=55), T0 + dt.timedelta(hours=2), team="lens"
        )
        assert abs(c - 2.0 * 15 / 60) < 1e-9
        pts = ledger.series(s, T0, T0 + dt.timedelta(hours=3), username="alice")
    assert [round(p["cumulative_core_hours"], 6) for p in pts] == [
        round(2 * 10 / 60, 6),
        round(2 * 20 / 60, 6),
    ]


def test_sampler_charges_a_team_only_for_its_members(sessions):
    from hub_config.quota import services as ops
    from hub_config.quota.services.sampler import Sampler

    admin = ops.Actor("root", platform_admin=True)
    with sessions() as s:
        ops.user(s, "alice", create=True)
        ops.user(s, "mallory", create=True)
        ops.create_team(s, admin, "lens")
        ops.add_member(s, admin, "lens", "alice")
        s.commit()

    class Fake:  # a source reporting fixed sightings (the hub cannot run in a unit test)
        name = "hub"

        def observe(self):
            forged = ledger.Running(
                key="hub:mallory/",
                kind="server",
                username="mallory",
                team="lens",
                cores=1.0,
                gpus=0.0,
                started=T0,
            )
            return [server(team="lens"), forged]

    sampler = Sampler(sessions, [Fake()], STEP)
    sampler.sample_once(at(0))
    sampler.sample_once(at(3600))
    assert abs(core_hours(sessions, username="alice", team="lens") - 2.0) < 1e-9
    assert core_hours(sessions, username="mallory", team="lens") == 0.0
    assert abs(core_hours(sessions, username="mallory", team=None) - 1.0) < 1e-9


LIVE, DEAD = 1001, 1002  # process ids as the sampler's process check sees them (patched below)


@pytest.fixture
def pids(monkeypatch):
    """The decision logic on a clock the test controls: the process check answers from LIVE
    (the real check, psutil against this machine, runs in the platform tests)."""
    from hub_config.quota.services import sources

    monkeypatch.setattr(sources, "_process_exists", lambda pid, started: pid == LIVE)


def _gateway_pass(sessions, gone, now, stop, pid, started=T0):
    """One sampler pass of a gateway worker row through GoneProcesses, as the gateway source
    makes it (the row's own stop time, the pid from its state)."""
    stopped, hold = gone.state("gateway:c1:w1", started, stop, pid, now=now)
    obs = ledger.Running(
        key="gateway:c1:w1",
        kind="worker",
        username="alice",
        team=None,
        cores=2.0,
        gpus=0.0,
        started=started,
        stopped=stopped,
        hold=hold,
    )
    with sessions() as s:
        ledger.integrate(s, "gateway", [obs], now, STEP)
        s.commit()
    return stopped, hold


def test_gone_before_its_row_says_so_is_charged_to_the_owners_stop_time(sessions, pids):
    """An ordinary shutdown: the worker's process is gone at 25 s, the gateway writes its row's
    stop time (22 s) only at 40 s. Held meanwhile, then charged exactly to 22 s (was: closed at the
    last sighting, 20 s, and under-charged under load, which failed CI)."""
    from hub_config.quota.services.sources import GoneProcesses

    gone, live, dead = GoneProcesses(owner_records_stop=True), LIVE, DEAD
    for t in (0, 10, 20):
        assert _gateway_pass(sessions, gone, at(t), None, live) == (None, False)
    assert _gateway_pass(sessions, gone, at(30), None, dead) == (None, True)  # held
    assert abs(core_hours(sessions) - 2.0 * 20 / 3600) < 1e-9  # nothing past the last sighting
    assert _gateway_pass(sessions, gone, at(40), at(22), dead) == (at(22), False)
    assert abs(core_hours(sessions) - 2.0 * 22 / 3600) < 1e-9
    _gateway_pass(sessions, gone, at(50), at(22), dead)  # later passes change nothing
    assert abs(core_hours(sessions) - 2.0 * 22 / 3600) < 1e-9


def test_a_crash_noticed_late_is_closed_at_its_last_sighting(sessions, pids):
    """A crash: the process is gone at 25 s; the gateway notices 95 s later and writes that as the
    stop time. The late stop time is not believed: charged to the last sighting (20 s). With no
    stop time at all, the hold ends after the grace and closes it the same way."""
    from hub_config.quota.services.sources import GoneProcesses

    gone, live, dead = GoneProcesses(owner_records_stop=True), LIVE, DEAD
    for t in (0, 10, 20):
        _gateway_pass(sessions, gone, at(t), None, live)
    assert _gateway_pass(sessions, gone, at(30), None, dead)[1]
    assert _gateway_pass(sessions, gone, at(120), at(120), dead) == (T0, False)
    assert abs(core_hours(sessions) - 2.0 * 20 / 3600) < 1e-9

    quiet = GoneProcesses(owner_records_stop=True, grace=60)
    later = T0 + dt.timedelta(hours=1)  # a second worker row under another start time
    for t in (0, 10, 20):
        _gateway_pass(sessions, quiet, later + dt.timedelta(seconds=t), None, live, later)
    assert _gateway_pass(sessions, quiet, later + dt.timedelta(seconds=30), None, dead, later)[1]
    assert _gateway_pass(sessions, quiet, later + dt.timedelta(seconds=80), None, dead, later)[1]
    assert _gateway_pass(sessions, quiet, later + dt.timedelta(seconds=95), None, dead, later) == (
        later,
        False,
    )
    assert abs(core_hours(sessions) - 2.0 * 40 / 3600) < 1e-9  # 20 s + 20 s, nothing held
