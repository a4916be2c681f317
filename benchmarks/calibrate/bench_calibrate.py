"""Calibration figures, as ratios against named baselines measured in the same run.

1. ``single``: one L1 -> L2 through this project's API (``roman-platform calibrate l2``)
   against romancal's own ``strun roman_elp`` on the same file and the same reference set
   (baseline B), timed from outside by ``farm-bench`` (wall, cpu, peak memory; ratio A/B).
   Both runs use identical step settings: source catalog without PSF fitting and no tweakreg,
   because ``strun`` cannot pass the ePSF override (it is not in the step's spec).
2. ``visit``: 18 detectors (one reference set and one L1 each) through ``calibrate_many`` on a
   2-worker LocalCluster: exposures per minute, against the same exposures run one after the
   other in this process (baseline), and the peak resident memory of each worker.

    python benchmarks/calibrate/bench_calibrate.py single --size 4088   # full detector (heavy)
    python benchmarks/calibrate/bench_calibrate.py visit --size 512

Data are generated under --work (default /tmp/roman-bench-calibrate) and reused on reruns.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

SETTINGS = {"steps": {"source_catalog": {"fit_psf": False}, "tweakreg": {"skip": True}}}


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def prepare(work: Path, detector: str, size: int, seed: int = 1) -> tuple[Path, Path]:
    """(reference set, L1 file) for one detector, generated once."""
    from platform_lib.calibrate.reference_files import make_reference_set, open_reference_set
    from platform_lib.calibrate.synthetic import simulate_l1, star_table

    refs = work / f"refs_{detector.lower()}_{size}"
    if not (refs / "refset.yaml").exists():
        t = time.perf_counter()
        make_reference_set(refs, detector=detector, size=size)
        _log(f"reference set {detector} {size}²: {time.perf_counter() - t:.1f} s")
    l1 = work / f"L1_{size}" / f"bench_{detector.lower()}_uncal.asdf"
    if not l1.exists():
        t = time.perf_counter()
        rs = open_reference_set(refs)
        radius = size * 0.11 / 3600 * 0.75
        stars = star_table(
            270.0, 66.0, radius, max(50, size * size // 20000), (16, 24), "F158", seed=seed
        )
        simulate_l1(rs, l1, ra=270.0, dec=66.0, stars=stars, cosmic_rays={}, seed=seed)
        _log(f"simulated L1 {detector} {size}²: {time.perf_counter() - t:.1f} s")
    return refs, l1


def strun_args(refs: Path, l1: Path, out: Path) -> list[str]:
    """The same run as romancal's users type it, with every override spelled out."""
    from platform_lib.calibrate.reference_files import open_reference_set
    from platform_lib.calibrate.references import FULL_FRAME_ONLY, STEP_REFTYPES

    rs = open_reference_set(refs)
    args = [
        "strun",
        "roman_elp",
        str(l1),
        f"--output_dir={out}",
        "--steps.source_catalog.fit_psf=False",
        "--steps.tweakreg.skip=True",
    ]
    skipped = set(FULL_FRAME_ONLY) if rs.subarray else set()
    for step in skipped:
        args.append(f"--steps.{step}.skip=True")
    for step, reftypes in STEP_REFTYPES.items():
        if step in skipped:
            continue
        for reftype in reftypes:
            if reftype == "epsf":
                continue
            args.append(f"--steps.{step}.override_{reftype}={rs.reference_file(reftype, 'F158')}")
    return args


def single(args: argparse.Namespace) -> int:
    from platform_lib.calibrate.references import _write_local_crds_config

    work = Path(args.work)
    refs, l1 = prepare(work, "WFI01", args.size)
    cfg = work / "bench_steps.yaml"
    cfg.write_text(yaml.safe_dump(SETTINGS))
    crds = work / "crds-local"
    _write_local_crds_config(crds)
    out_a, out_b = work / "out_api", work / "out_strun"
    for d in (out_a, out_b):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    env = dict(
        os.environ,
        STPIPE_DISABLE_CRDS_STEPPARS="true",
        CRDS_MODE="local",
        CRDS_PATH=str(crds),
        CRDS_CONTEXT="roman_0001.pmap",
    )
    env.pop("CRDS_SERVER_URL", None)
    bindir = Path(sys.executable).parent
    # A removes its output first so every run calibrates (the API skips done products)
    api = (
        f"sh -c 'rm -f {out_a}/*; exec {bindir}/roman-platform calibrate l2 {l1} --out {out_a} "
        f"--refs {refs} --config {cfg} >>{work}/api.log 2>&1'"
    )
    base = " ".join(strun_args(refs, l1, out_b)).replace("strun", str(bindir / "strun"), 1)
    base = f"sh -c 'exec {base} >>{work}/strun.log 2>&1'"
    cmd = [
        "farm-bench",
        "-n",
        str(args.runs),
        "--warmup",
        "0",
        "--timeout",
        str(args.timeout),
        "--vs",
        base,
        "--",
        "sh",
        "-c",
        api[len("sh -c '") : -1],
    ]
    _log(
        f"A = this API, B = strun roman_elp; {args.size}² science pixels, {args.runs} paired run(s)"
    )
    return subprocess.call(cmd, env=env)


def visit(args: argparse.Namespace) -> int:
    from platform_lib.calibrate.exposure import calibrate_exposure
    from platform_lib.calibrate.scale import calibrate_many
    from platform_lib.compute import get_client

    work = Path(args.work)
    detectors = [f"WFI{i:02d}" for i in range(1, 19)][: args.detectors]
    pairs = [prepare(work, d, args.size, seed=i + 1) for i, d in enumerate(detectors)]
    cfg = SETTINGS
    # baseline: the same exposures one after another in this process
    out_serial = work / f"visit_serial_{args.size}"
    shutil.rmtree(out_serial, ignore_errors=True)
    t = time.perf_counter()
    for refs, l1 in pairs[: args.serial]:
        calibrate_exposure(l1, out_serial / refs.name, refs=refs, config=cfg)
    serial_per = (time.perf_counter() - t) / args.serial
    _log(f"serial baseline: {serial_per:.1f} s per exposure (over {args.serial})")

    # the graph: every detector with its own set; calibrate_many takes one set per call, so
    # one call per detector, all submitted to the same cluster before any is awaited
    out = work / f"visit_dask_{args.size}"
    shutil.rmtree(out, ignore_errors=True)
    from distributed import as_completed

    from platform_lib.calibrate.scale import _one

    t = time.perf_counter()
    with get_client(2, memory_limit=args.worker_memory) as client:
        client.run(lambda: None)
        t_ready = time.perf_counter()
        items = [
            (
                str(l1),
                str(out / refs.name),
                str(refs),
                {"pipeline": "exposure", "steps": cfg["steps"]},
                None,
            )
            for refs, l1 in pairs
        ]
        futures = client.map(_one, items, pure=False)
        results = [f.result() for f in as_completed(futures)]
        wall = time.perf_counter() - t_ready
        peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    failed = [r for r in results if r.status != "done"]
    per_min = len(results) / wall * 60
    _log(
        f"visit of {len(results)} detectors ({args.size}²) on 2 workers: {wall:.1f} s "
        f"(cluster start {t_ready - t:.1f} s) = {per_min:.2f} exposures/min; "
        f"{len(failed)} failed"
    )
    print(
        f"throughput ratio vs serial baseline: {serial_per * len(results) / wall:.2f}x "
        f"(2 workers on {os.cpu_count()} cores)"
    )
    for w, kib in peaks.items():
        print(f"peak RSS {w}: {kib / 1024:.0f} MiB")
    del calibrate_many
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="/tmp/roman-bench-calibrate")
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("single", help="this API vs strun roman_elp on one exposure")
    s.add_argument("--size", type=int, default=4088)
    s.add_argument("--runs", type=int, default=1)
    s.add_argument("--timeout", type=int, default=1800)
    s.set_defaults(func=single)
    v = sub.add_parser("visit", help="18 detectors on a 2-worker local cluster")
    v.add_argument("--size", type=int, default=512)
    v.add_argument("--detectors", type=int, default=18)
    v.add_argument("--serial", type=int, default=2, help="exposures in the serial baseline")
    v.add_argument("--worker-memory", default="4GiB")
    v.set_defaults(func=visit)
    args = p.parse_args(argv)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
