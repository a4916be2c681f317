"""Simulation figures, as ratios against baselines measured in the same run.

1. Full-detector L1 (4088², F158, MA table 4, ``--nobj`` objects, default 3,000 stars and
   12,000 galaxies, same catalog file): wall time and
   peak memory of ``platform_lib.simulate`` vs ``romanisim-make-image`` (each in its own
   process, RSS of the process tree sampled every 0.1 s).
2. Resultant apportioning alone, same full-detector electrons image, in this process:
   ``platform_lib.simulate.apportion`` vs ``romanisim.l1.apportion_counts_to_resultants``.
3. Point-source PSF set-up alone (the full detector's ePSF table, F158, SCA 7, romanisim's
   parameters: 4 corners, 8x8 renders, 51x51 Taylor offsets of a 201² stamp): romanisim's
   ``VariablePSF.build_epsf_interpolator`` vs ``platform_lib.simulate.epsf.FastVariablePSF``,
   each in its own process (wall, peak RSS), and the two tables compared.
4. An 18-detector pointing (one cutout per detector): serial in one process vs a 2-worker
   local Dask cluster from ``platform_lib.compute.get_client``.

Run: ``.venv/bin/python benchmarks/simulate/bench_simulate.py`` (``--help`` for options).
CPU is shared: run the full-detector parts once, and read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


def _run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB, process tree) of a command."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr is not None else ""
        raise RuntimeError(f"{cmd[0]} failed: {err[-2000:]}")
    return wall, peak / 1e6


OUR_L1 = """
import logging, sys
logging.getLogger("romanisim").setLevel(logging.WARNING)
from astropy.table import Table
from platform_lib.simulate import ExposureSpec, Footprint, InstrumentEffects, simulate_exposure
from platform_lib.simulate import write_product
cat = Table.read(sys.argv[1], format="ascii.ecsv")
spec = ExposureSpec(optical_element="F158", detector="WFI07", ra=270.0, dec=66.0,
                    start_time="2026-01-01T00:00:00", ma_table=4, level=1,
                    footprint=Footprint.full(), seed=1, name="ours")
sim = simulate_exposure(cat, spec, InstrumentEffects(persistence=True), apportioner=sys.argv[3])
write_product(sim, sys.argv[2], spec.filename)
"""


def full_detector(tmp: Path, nobj: int) -> dict:
    from platform_lib.simulate import combine, galaxy_field, star_field

    cat = combine(
        star_field((270.0, 66.0), 0.4, n=nobj // 5, elements=["F158"], seed=1),
        galaxy_field((270.0, 66.0), 0.4, n=nobj - nobj // 5, elements=["F158"], seed=2),
    )
    cat_path = tmp / "catalog.ecsv"
    # romanisim's reader wants only its own columns
    cat["ra", "dec", "type", "n", "half_light_radius", "pa", "ba", "F158"].write(
        cat_path, format="ascii.ecsv"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    base_wall, base_mem = _run_measured(
        [
            str(Path(PY).parent / "romanisim-make-image"),
            "--catalog",
            str(cat_path),
            "--bandpass",
            "F158",
            "--level",
            "1",
            "--sca",
            "7",
            "--radec",
            "270",
            "66",
            "--rng_seed",
            "1",
            "--ma_table_number",
            "4",
            str(tmp / "romanisim_l1.asdf"),
        ],
        env,
    )
    print(
        f"romanisim-make-image L1 full detector: {base_wall:.1f} s, peak {base_mem:.0f} MB",
        flush=True,
    )
    script = tmp / "ours.py"
    script.write_text(OUR_L1)
    our_wall, our_mem = _run_measured(
        [PY, str(script), str(cat_path), str(tmp / "ours"), "fast"], env
    )
    print(
        f"platform_lib.simulate L1 full detector: {our_wall:.1f} s, peak {our_mem:.0f} MB",
        flush=True,
    )
    return {
        "romanisim_make_image_s": base_wall,
        "romanisim_make_image_peak_MB": base_mem,
        "platform_s": our_wall,
        "platform_peak_MB": our_mem,
        "speedup": base_wall / our_wall,
        "memory_ratio": our_mem / base_mem,
    }


def apportioning(side: int) -> dict:
    import numpy as np
    from romanisim import l1

    from platform_lib.simulate.apportion import apportion_counts_to_resultants

    rng = np.random.default_rng(0)
    # sky-like electrons (~1 e/s over 139 s) plus a few thousand bright pixels
    counts = rng.poisson(140, (side, side)).astype(np.float32)
    bright = rng.integers(0, side * side, side * side // 2000)
    counts.reshape(-1)[bright] = rng.poisson(5e4, bright.size)
    tij = l1.read_pattern_to_tij(4)
    t0 = time.perf_counter()
    ref, _ = l1.apportion_counts_to_resultants(counts, tij, seed=1)
    t_ref = time.perf_counter() - t0
    del ref
    t0 = time.perf_counter()
    ours, _ = apportion_counts_to_resultants(counts, tij, seed=1)
    t_our = time.perf_counter() - t0
    print(
        f"apportioning {side}x{side}, MA table 4: romanisim {t_ref:.1f} s, ours {t_our:.1f} s "
        f"-> {t_ref / t_our:.2f}x",
        flush=True,
    )
    return {"side": side, "romanisim_s": t_ref, "platform_s": t_our, "speedup": t_ref / t_our}


def pointing(tmp: Path, cutout: int, workers: int) -> dict:
    from platform_lib.compute import get_client
    from platform_lib.simulate import (
        Footprint,
        InstrumentEffects,
        galaxy_field,
        plan_survey,
        run_survey,
    )

    cat = galaxy_field((270.0, 66.0), 0.5, n=2000, elements=["F158"], seed=3)
    _warm_worker()
    plan = plan_survey((270.0, 66.0), optical_elements=["F158"])
    kw: dict[str, Any] = dict(
        level=1,
        footprint=Footprint.cutout(cutout),
        effects=InstrumentEffects(),
        show_progress=False,
    )
    t0 = time.perf_counter()
    run_survey(cat, plan, str(tmp / "serial"), serial=True, **kw)
    t_serial = time.perf_counter() - t0
    with get_client(n_workers=workers) as client:
        # Each worker's first exposure pays imports and romanisim's zero-point tables, which
        # the serial run paid before its timer (catalog set-up); time that warm-up apart.
        t0 = time.perf_counter()
        client.run(_warm_worker)
        t_warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_survey(cat, plan, str(tmp / "dask"), client=client, **kw)
        t_dask = time.perf_counter() - t0
    print(
        f"18-detector pointing ({cutout}px cutouts, L1): serial {t_serial:.1f} s, "
        f"{workers}-worker local cluster {t_dask:.1f} s (+{t_warm:.1f} s worker warm-up) "
        f"-> {t_serial / t_dask:.2f}x ({t_serial / (t_dask + t_warm):.2f}x with warm-up)",
        flush=True,
    )
    return {
        "cutout": cutout,
        "workers": workers,
        "serial_s": t_serial,
        "dask_s": t_dask,
        "worker_warmup_s": t_warm,
        "speedup": t_serial / t_dask,
        "speedup_with_warmup": t_serial / (t_dask + t_warm),
    }


EPSF = """
import logging, sys, time
import numpy as np
logging.getLogger("romanisim").setLevel(logging.WARNING)
import galsim, galsim.roman, romanisim.psf
from platform_lib.simulate.epsf import FastVariablePSF
wcs = galsim.roman.getWCS(galsim.CelestialCoord(270 * galsim.degrees, 66 * galsim.degrees), SCAs=[7])[7]
psf = romanisim.psf.make_psf(7, "F158", wcs=wcs, chromatic=False, psftype="galsim", variable=True)
if sys.argv[1] == "platform":
    psf = FastVariablePSF.from_variable(psf)
t0 = time.perf_counter()
psf.build_epsf_interpolator(galsim.ImageF(4088, 4088, wcs=wcs))
print(f"build {time.perf_counter() - t0:.1f}", flush=True)
np.save(sys.argv[2], psf.allarrays[::10, ::10])
"""


def epsf_setup(tmp: Path) -> dict:
    import numpy as np

    script = tmp / "epsf.py"
    script.write_text(EPSF)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = {}
    for engine in ("romanisim", "platform"):
        wall, peak = _run_measured([PY, str(script), engine, str(tmp / f"{engine}.npy")], env)
        out[engine] = (wall, peak)
        print(f"ePSF set-up, {engine}: {wall:.1f} s (process), peak {peak:.0f} MB", flush=True)
    a, b = np.load(tmp / "romanisim.npy"), np.load(tmp / "platform.npy")
    diff = float(np.abs(a - b).max() / np.abs(a).max())
    print(f"tables (every 10th offset) differ by at most {diff:.2e} of the peak", flush=True)
    return {
        "romanisim_s": out["romanisim"][0],
        "romanisim_peak_MB": out["romanisim"][1],
        "platform_s": out["platform"][0],
        "platform_peak_MB": out["platform"][1],
        "speedup": out["romanisim"][0] / out["platform"][0],
        "max_relative_difference": diff,
    }


def _warm_worker() -> bool:
    import logging

    logging.getLogger("romanisim").setLevel(logging.WARNING)
    from platform_lib.simulate import bandpass, zeropoint_rate

    zeropoint_rate("F158", "WFI01")
    bandpass("F158")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        choices=("full", "apportion", "epsf", "pointing"),
        action="append",
        help="run only these parts (repeatable; default: all)",
    )
    parser.add_argument(
        "--nobj",
        type=int,
        default=15000,
        help="full-detector scene: a fifth stars, the rest galaxies (default: issue 22's "
        "high-latitude held-out density, 3,000 stars + 12,000 galaxies)",
    )
    parser.add_argument("--apportion-side", type=int, default=4088)
    parser.add_argument("--cutout", type=int, default=512, help="per-detector cutout (pointing)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    parts = args.only or ["full", "apportion", "epsf", "pointing"]
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-simulate-") as tmp:
        tmp_path = Path(tmp)
        if "full" in parts:
            figures["full_detector_l1"] = full_detector(tmp_path, args.nobj)
        if "apportion" in parts:
            figures["apportioning"] = apportioning(args.apportion_side)
        if "epsf" in parts:
            figures["point_source_psf_setup"] = epsf_setup(tmp_path)
        if "pointing" in parts:
            figures["pointing_18_detectors"] = pointing(tmp_path, args.cutout, args.workers)
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    import logging

    logging.getLogger("romanisim").setLevel(logging.WARNING)
    sys.exit(main())
