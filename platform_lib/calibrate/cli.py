"""``roman-platform calibrate``: reference sets, L1 -> L2, L2 -> L3, step-configuration templates."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..instrument import SCIENCE_PIXELS


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="calibrate with romancal: L1 -> L2 -> L3, reference-file sets",
        description=(
            "Calibrate Roman WFI exposures with romancal, the mission's pipeline. Reference "
            "files come from a set made by 'calibrate refs' (--refs) or, on the platform, from "
            "CRDS (CRDS_PATH and CRDS_SERVER_URL). Paths may be local or s3:// URLs in the "
            "data store."
        ),
    )
    sub = p.add_subparsers(dest="calibrate_command", metavar="ACTION")

    r = sub.add_parser(
        "refs",
        help="generate a reference-file set and stage it in the store",
        description="Generate a complete WFI reference-file set whose values "
        "match romanisim's instrument parameters.",
    )
    r.add_argument("dest", help="folder or s3://bucket/prefix to write the set to")
    r.add_argument("--detector", default="WFI01", help="WFI01..WFI18 (default WFI01)")
    r.add_argument(
        "--size",
        type=int,
        default=SCIENCE_PIXELS,
        help=f"science pixels per side: {SCIENCE_PIXELS} = full detector (default); smaller = "
        "a sub-array set (refpix and dark decay are then skipped)",
    )
    r.add_argument(
        "--filters",
        default="F158",
        help="comma-separated optical elements for flat/ePSF/photom/apcorr",
    )
    r.add_argument(
        "--seed",
        type=int,
        default=1,
        help="random seed of the synthetic reference files (default 1)",
    )
    r.set_defaults(func=_refs)

    l2 = sub.add_parser("l2", help="L1 ramps -> L2 calibrated exposures (ExposurePipeline)")
    l2.add_argument("inputs", nargs="+", help="L1 files or URLs")
    l2.add_argument(
        "--out",
        required=True,
        help="output folder: an s3:// prefix, a ./ or absolute path, or a folder in your "
        "own store ($ROMAN_USER_STORE_URL, when set)",
    )
    l2.add_argument("--refs", help="reference-file set (folder or s3:// prefix); default CRDS")
    l2.add_argument("--config", help="step configuration (YAML, or stpipe ASDF parameters)")
    l2.add_argument("--abs-refcat", help="absolute astrometric catalog file for tweakreg")
    l2.add_argument(
        "--workers",
        type=int,
        default=None,
        help="Dask workers (several inputs run as a Dask graph; default 2 locally)",
    )
    l2.add_argument("--worker-memory", default="8GiB", help="memory limit per worker")
    l2.add_argument("--no-index", action="store_true", help="do not add outputs to the index")
    l2.set_defaults(func=_l2)

    l3 = sub.add_parser("l3", help="L2 exposures -> L3 mosaic (MosaicPipeline)")
    l3.add_argument("inputs", nargs="+", help="L2 files or URLs")
    l3.add_argument(
        "--out",
        required=True,
        help="output file (…_coadd.asdf): a URL, a ./ or absolute path, or a path in "
        "your own store ($ROMAN_USER_STORE_URL, when set)",
    )
    l3.add_argument("--refs", help="reference-file set; default CRDS")
    l3.add_argument("--config", help="step configuration (pipeline: mosaic)")
    l3.add_argument("--skycell", action="store_true", help="resample onto a sky cell (CRDS)")
    l3.set_defaults(func=_l3)

    c = sub.add_parser("config", help="print an editable step configuration with defaults")
    c.add_argument(
        "--pipeline",
        choices=("exposure", "mosaic"),
        default="exposure",
        help="exposure (L1 -> L2, default) or mosaic (L2 -> L3)",
    )
    c.set_defaults(func=_config)

    def _help(_args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=_help)


def _refs(args: argparse.Namespace) -> int:
    from .reference_files import RefSetSpec, make_reference_set

    try:
        spec = RefSetSpec(
            detector=args.detector,
            size=args.size,
            seed=args.seed,
            optical_elements=tuple(f.strip() for f in args.filters.split(",")),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dest = make_reference_set(args.dest, spec)
    print(f"reference-file set for {spec.detector} ({spec.size}² science pixels) at {dest}")
    return 0


def _errors() -> tuple[type[BaseException], ...]:
    from ..data.refset import ReferenceSetError
    from .config import ConfigError
    from .exposure import InputError
    from .references import NoReferenceSource

    return (ConfigError, InputError, ReferenceSetError, NoReferenceSource, FileNotFoundError)


def _l2(args: argparse.Namespace) -> int:
    from platform_lib.data.user_store import resolve_output

    from .exposure import calibrate_exposure
    from .scale import calibrate_many

    args.out = resolve_output(args.out)
    try:
        if len(args.inputs) == 1 and args.workers is None:
            res = calibrate_exposure(
                args.inputs[0],
                args.out,
                refs=args.refs,
                config=args.config,
                abs_refcat=args.abs_refcat,
            )
            print(f"{res.status}: {res.output} ({res.wall_s:.1f} s)")
            if res.provenance.get("alignment"):
                print("alignment:", json.dumps(res.provenance["alignment"]))
            return 0
        report = calibrate_many(
            args.inputs,
            args.out,
            refs=args.refs,
            config=args.config,
            abs_refcat=args.abs_refcat,
            n_workers=args.workers,
            worker_memory=args.worker_memory,
            index=not args.no_index,
            progress=True,
        )
    except _errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 1 if report.failed else 0


def _l3(args: argparse.Namespace) -> int:
    from platform_lib.data.user_store import resolve_output

    from .mosaic import build_mosaic

    args.out = resolve_output(args.out, is_file=True)
    try:
        res = build_mosaic(
            args.inputs,
            args.out,
            refs=args.refs,
            config=args.config,
            resample_on_skycell=args.skycell,
        )
    except _errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"mosaic: {res.output} ({res.wall_s:.1f} s); catalog: {res.catalog}")
    return 0


def _config(args: argparse.Namespace) -> int:
    import yaml

    from .config import pipeline_class, step_parameters

    cls = pipeline_class(args.pipeline)
    skip_keys = {
        "pre_hooks",
        "post_hooks",
        "input_dir",
        "output_dir",
        "output_file",
        "output_ext",
        "output_use_model",
        "output_use_index",
        "save_results",
        "search_output_file",
        "suffix",
        "update_version",
        "skip",
    }
    steps: dict[str, Any] = {}
    for name, step_cls in cls.step_defs.items():
        pars = step_cls().get_pars()
        steps[name] = {
            k: v
            for k, v in sorted(pars.items())
            if k not in skip_keys
            and not k.startswith("override_")
            and k in step_parameters(step_cls)
        }
    print(f"# step settings for the {args.pipeline} pipeline; delete what you keep at default,")
    print("# add 'skip: true' to skip a step, 'replace: module:Class' to swap one in.")
    print(yaml.safe_dump({"pipeline": args.pipeline, "steps": steps}, sort_keys=False))
    return 0
