"""Why the platform unsets MALLOC_TRIM_THRESHOLD_ for Dask workers, as a ratio.

distributed starts every nanny-managed worker with ``MALLOC_TRIM_THRESHOLD_=65536``. Setting
any glibc malloc tunable switches off its dynamic mmap threshold, so each large temporary
array is a fresh ``mmap`` that is page-faulted in and unmapped again. This script runs the
same CPU-bound workload (an 18-detector pointing of 512-pixel L1 cutouts, simulated serially)
in fresh processes with and without the variable, alternating, and prints CPU seconds and the
ratio; then the same pointing on a 2-worker ``get_client()`` LocalCluster (which the platform
configures without it) against the serial run.

Run: ``.venv/bin/python benchmarks/compute/bench_worker_malloc.py [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

WORKLOAD = """
import json, logging, sys, tempfile, time
logging.getLogger("romanisim").setLevel(logging.WARNING)
from platform_lib.simulate import (Footprint, InstrumentEffects, bandpass, galaxy_field,
                                   plan_survey, run_survey, zeropoint_rate)


def _warm():
    zeropoint_rate("F158", "WFI01"); bandpass("F158")
    return True


if __name__ == "__main__":  # workers are spawned: they import this file
    cutout = int(sys.argv[1])
    cat = galaxy_field((270.0, 66.0), 0.5, n=2000, elements=["F158"], seed=3)
    zeropoint_rate("F158", "WFI01"); bandpass("F158")
    plan = plan_survey((270.0, 66.0), optical_elements=["F158"])
    kw = dict(level=1, footprint=Footprint.cutout(cutout), effects=InstrumentEffects(),
              show_progress=False)
    out = tempfile.mkdtemp()
    t0, c0 = time.perf_counter(), time.process_time()
    run_survey(cat, plan, out + "/serial", serial=True, **kw)
    t_serial, c_serial = time.perf_counter() - t0, time.process_time() - c0
    result = {"serial_wall_s": t_serial, "serial_cpu_s": c_serial}
    if len(sys.argv) > 2:
        from platform_lib.compute import get_client
        with get_client(n_workers=int(sys.argv[2]), reuse=False) as client:
            client.run(_warm)
            t0 = time.perf_counter()
            run_survey(cat, plan, out + "/dask", client=client, **kw)
            result["dask_wall_s"] = time.perf_counter() - t0
    print(json.dumps(result))
"""


def run(env_extra: dict[str, str], *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    env.update(env_extra)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(WORKLOAD)
    try:
        proc = subprocess.run(
            [sys.executable, fh.name, *args], capture_output=True, text=True, env=env, timeout=1800
        )
    finally:
        os.unlink(fh.name)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="runs of each variant (alternating)")
    p.add_argument("--cutout", type=int, default=512, help="cutout side in pixels")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers")
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    plain, trimmed = [], []
    for i in range(args.repeat):
        plain.append(run({}, str(args.cutout))["serial_cpu_s"])
        trimmed.append(run({"MALLOC_TRIM_THRESHOLD_": "65536"}, str(args.cutout))["serial_cpu_s"])
        print(
            f"run {i + 1}: CPU {plain[-1]:.1f} s plain, {trimmed[-1]:.1f} s with "
            "MALLOC_TRIM_THRESHOLD_=65536",
            flush=True,
        )
    ratio = statistics.median(trimmed) / statistics.median(plain)
    print(
        f"serial pointing CPU time, median of {args.repeat}: {statistics.median(plain):.1f} s "
        f"plain vs {statistics.median(trimmed):.1f} s with distributed's worker setting "
        f"-> {ratio:.2f}x",
        flush=True,
    )
    t0 = time.perf_counter()
    par = run({}, str(args.cutout), str(args.workers))
    print(
        f"pointing on a {args.workers}-worker get_client() cluster: {par['dask_wall_s']:.1f} s vs "
        f"{par['serial_wall_s']:.1f} s serial -> {par['serial_wall_s'] / par['dask_wall_s']:.2f}x "
        f"({time.perf_counter() - t0:.0f} s with start-up)",
        flush=True,
    )
    figures = {
        "serial_cpu_plain_s": plain,
        "serial_cpu_trim_s": trimmed,
        "trim_ratio": ratio,
        "parallel": par,
        "speedup": par["serial_wall_s"] / par["dask_wall_s"],
    }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
