"""Exact accounting through crashes: a Dask cluster whose processes are gone stops being charged
at its last sighting, not when the gateway notices (30-95 s later; +43 % measured before).

Real processes stand in for the scheduler and a worker (their pids in the gateway's own database
schema, as dask-gateway-server's local backend writes them); a process watcher (psutil, waiting
on them) gives the truth, and the ledger must match it within one sampling step.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time

import psutil
import pytest
from sqlalchemy import create_engine, func, select

STEP = 0.5  # seconds between sampling passes


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _ms(t: dt.datetime) -> int:
    return int(t.replace(tzinfo=dt.UTC).timestamp() * 1000)


@pytest.fixture
def gateway_db(tmp_path):
    from dask_gateway_server.backends import db_base

    url = f"sqlite:///{tmp_path / 'gateway.sqlite'}"
    engine = create_engine(url)
    db_base.metadata.create_all(engine)
    procs = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]) for _ in range(2)
    ]
    started = _now()
    with engine.begin() as c:
        c.execute(
            db_base.clusters.insert().values(
                id=1,
                name="c1",
                username="alice",
                status=db_base.JobStatus.RUNNING,
                target=db_base.JobStatus.RUNNING,
                count=1,
                options={},
                config={"scheduler_cores": 1, "worker_cores": 2},
                state={"pid": procs[0].pid},
                token=b"t" * 140,
                scheduler_address="",
                dashboard_address="",
                api_address="",
                tls_credentials=b"",
                start_time=_ms(started),
                stop_time=None,
            )
        )
        c.execute(
            db_base.workers.insert().values(
                id=1,
                name="w1",
                cluster_id=1,
                status=db_base.JobStatus.RUNNING,
                target=db_base.JobStatus.RUNNING,
                state={"pid": procs[1].pid},
                start_time=_ms(started),
                stop_time=None,
                close_expected=0,
            )
        )
    yield url, engine, procs, started
    for p in procs:
        p.kill()
        p.wait()
    engine.dispose()


def test_dead_cluster_is_charged_to_its_last_sighting(sessions, gateway_db):
    from dask_gateway_server.backends import db_base

    from hub_config.quota.services.sampler import Sampler
    from hub_config.quota.services.sources import GatewayDatabaseSource
    from hub_config.quota.storage.models import UsageRecord

    url, engine, procs, started = gateway_db
    sampler = Sampler(sessions, [GatewayDatabaseSource(url)], STEP)
    passes = []

    def sample() -> None:
        passes.append(time.monotonic())
        sampler.sample_once()

    for _ in range(4):
        sample()
        time.sleep(STEP)
    for p in procs:  # the crash: kill -9, and the watcher's truth is the moment of death
        p.kill()
    psutil.wait_procs([psutil.Process(p.pid) for p in procs], timeout=10)
    for p in procs:
        p.wait()
    died = _now()
    for _ in range(6):  # the gateway has not noticed: its rows still say RUNNING
        sample()
        time.sleep(STEP)
    with engine.begin() as c:  # ... until it does, late, and writes its stop time
        c.execute(
            db_base.clusters.update().values(status=db_base.JobStatus.FAILED, stop_time=_ms(_now()))
        )
        c.execute(
            db_base.workers.update().values(status=db_base.JobStatus.FAILED, stop_time=_ms(_now()))
        )
    sample()
    sample()
    truth = (died - started).total_seconds() * (1 + 2)  # scheduler 1 core + worker 2 cores
    with sessions() as s:
        charged = 3600 * s.scalar(select(func.sum(UsageRecord.core_hours)))
        keys = set(s.scalars(select(UsageRecord.key)))
    assert keys == {"gateway:c1:scheduler", "gateway:c1:w1"}
    step = max(b - a for a, b in zip(passes, passes[1:]))  # the real sampling step
    print(
        json.dumps(
            {
                "charged_core_s": round(charged, 2),
                "true_core_s": round(truth, 2),
                "step_s": round(step, 2),
            }
        )
    )
    # within one sampling step of the 3 cores; before: charged to the gateway's late stop time
    assert truth - 3 * step <= charged <= truth + 0.1, (charged, truth, step)
