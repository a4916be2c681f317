"""What the local spawner enforces without cgroups: address space and CPU affinity, applied to
a real child process by the spawner's own preexec function."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
from types import SimpleNamespace

from jupyterhub.spawner import SimpleLocalProcessSpawner

from hub_config.policy import load_policy
from hub_config.spawner import TierLocalSpawnerMixin


class _Spawner(TierLocalSpawnerMixin, SimpleLocalProcessSpawner):
    pass


def _limits(pid: int) -> str:
    with open(f"/proc/{pid}/limits") as f:
        return next(line for line in f if line.startswith("Max address space"))


def test_rlimit_and_affinity_fallback(tmp_path):
    user = SimpleNamespace(
        name="ann",
        groups=[SimpleNamespace(name="tier-research")],
        spawners={},
        url="/user/ann/",
        id=1,
    )
    sp = _Spawner(user=user, use_cgroups=False, home_dir_template=str(tmp_path / "{username}"))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, sp.apply_tier_options({"profile": "medium"})).result()
    profile = load_policy().profiles["medium"]
    assert sp.mem_limit == profile.mem_limit_bytes and sp.cpu_limit == profile.cpu_limit
    notes = sp.local_enforcement()
    assert notes["memory"].startswith("RLIMIT_AS") and "not enforced" in notes["gpu"]
    assert "RLIMIT_AS" in sp.environment["ROMAN_LIMITS_ENFORCED"]
    proc = subprocess.Popen(["sleep", "30"], preexec_fn=sp.make_preexec_fn("ann"))
    try:
        line = _limits(proc.pid)
        assert line.split()[3] == str(profile.mem_limit_bytes), line
        cores = min(len(os.sched_getaffinity(0)), math.ceil(profile.cpu_limit))
        assert len(os.sched_getaffinity(proc.pid)) == cores
    finally:
        proc.kill()
        proc.wait()
