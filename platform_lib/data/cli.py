"""``roman-platform data``: index, search, sample and PSF library commands.

The store defaults to ``$ROMAN_DATA_URL`` (with ``$ROMAN_DATA_S3_ENDPOINT`` and the AWS keys),
as in a notebook on the platform; every command takes ``--store`` to point elsewhere.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "data",
        help="index, search and read Roman products in the data store; the PSF library",
        description=(
            "Work with the data store (s3://bucket/prefix or a folder; default $ROMAN_DATA_URL): "
            "build its product index, search it by sky position and metadata, make the sample "
            "survey, build or query the PSF library."
        ),
    )
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")

    def store_arg(sp: argparse.ArgumentParser, positional: bool = False) -> None:
        if positional:
            sp.add_argument(
                "store",
                nargs="?",
                default=None,
                help="store URL (s3://bucket/prefix or folder); default $ROMAN_DATA_URL",
            )
        else:
            sp.add_argument(
                "--store",
                default=None,
                help="store URL (s3://bucket/prefix or folder); default $ROMAN_DATA_URL",
            )
        sp.add_argument(
            "--endpoint", default=None, help="S3 endpoint URL (default $ROMAN_DATA_S3_ENDPOINT)"
        )

    ix = sub.add_parser(
        "index",
        help="index new/changed products (ASDF metadata only) on Dask",
        description="Index the products of a store into its own index (_index/). On "
        "the platform the default is your own store ($ROMAN_USER_STORE_URL, searched "
        "alongside the survey); the survey's shared index is the operators' (--shared).",
    )
    ix.add_argument(
        "store",
        nargs="?",
        default=None,
        help="store URL (s3://bucket/prefix or folder); default $ROMAN_USER_STORE_URL, "
        "else $ROMAN_DATA_URL",
    )
    ix.add_argument(
        "--endpoint", default=None, help="S3 endpoint URL (default $ROMAN_DATA_S3_ENDPOINT)"
    )
    ix.add_argument(
        "--shared",
        action="store_true",
        help="operators: rewrite the survey store's shared index even with $ROMAN_USER_STORE_URL set",
    )
    ix.add_argument("--prefix", default="", help="only look under this folder of the store")
    ix.add_argument("--batch-size", type=int, default=16, help="files read per Dask task")
    ix.set_defaults(func=_index)

    se = sub.add_parser("search", help="search the index; prints a table (or writes --output)")
    store_arg(se)
    se.add_argument(
        "--cone",
        nargs=3,
        type=float,
        metavar=("RA", "DEC", "RADIUS_ARCSEC"),
        help="cone search (degrees, degrees, arcseconds)",
    )
    se.add_argument(
        "--polygon",
        nargs="+",
        type=float,
        metavar="RA_DEC",
        help="polygon: ra1 dec1 ra2 dec2 ra3 dec3 ... (degrees)",
    )
    se.add_argument("--level", nargs="+", help="L1 L2 L3 L4 PSF")
    se.add_argument("--optical-element", nargs="+", help="e.g. F158")
    se.add_argument("--detector", nargs="+", help="e.g. WFI01")
    se.add_argument("--start", help="earliest start time (ISO or MJD via astropy.time)")
    se.add_argument("--end", help="latest start time")
    se.add_argument(
        "--mast",
        default=None,
        metavar="SERVER",
        help="also search MAST (give 'default' for astroquery's server)",
    )
    se.add_argument(
        "--output", help="write the table here (format from the extension: .ecsv, .fits, .parquet)"
    )
    se.set_defaults(func=_search)

    sa = sub.add_parser("sample", help="simulate the sample survey (romanisim), stage and index it")
    store_arg(sa, positional=True)
    sa.add_argument("--prefix", default="sample", help="folder in the store (default: sample)")
    sa.add_argument(
        "--detectors",
        nargs="+",
        default=["WFI01", "WFI02", "WFI03"],
        help="detectors to simulate (default: WFI01 WFI02 WFI03)",
    )
    sa.add_argument(
        "--optical-elements",
        nargs="+",
        default=["F158", "F087"],
        help="filters to simulate (default: F158 F087)",
    )
    sa.add_argument(
        "--epochs", type=int, default=3, help="exposures per detector and filter (default 3)"
    )
    sa.add_argument("--size", type=int, default=128, help="cutout size in pixels")
    sa.add_argument(
        "--ra", type=float, default=270.0, help="field centre RA in degrees (default 270)"
    )
    sa.add_argument(
        "--dec", type=float, default=66.0, help="field centre Dec in degrees (default 66)"
    )
    sa.add_argument("--psf-grid", type=int, default=2, help="PSF library grid (N x N per detector)")
    sa.add_argument("--no-psf", action="store_true", help="skip the PSF library")
    sa.set_defaults(func=_sample)

    ps = sub.add_parser("psf", help="build the PSF library, or print a PSF model at a position")
    store_arg(ps)
    ps.add_argument("--build", action="store_true", help="build (and stage) the library files")
    ps.add_argument("--detectors", nargs="+", default=["WFI01"], help="detectors (default: WFI01)")
    ps.add_argument(
        "--optical-elements", nargs="+", default=["F158"], help="filters (default: F158)"
    )
    ps.add_argument(
        "--grid", type=int, default=3, help="PSF models on an N x N grid per detector (default 3)"
    )
    ps.add_argument("--oversample", type=int, default=4, help="PSF oversampling factor (default 4)")
    ps.add_argument(
        "--at",
        nargs=2,
        type=float,
        metavar=("X", "Y"),
        help="print the PSF model's summary at detector pixel X Y",
    )
    ps.set_defaults(func=_psf)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _store(args: argparse.Namespace):
    from .store import get_store

    return get_store(args.store, endpoint=args.endpoint)


def _fail(exc: Exception) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 1


def _index(args: argparse.Namespace) -> int:
    from .index import build_index
    from .store import DataStoreError
    from .user_store import index_target

    try:
        store, note = index_target(args.store, args.endpoint, shared=args.shared)
        if note:
            print(note, file=sys.stderr)
        report = build_index(store, prefix=args.prefix, batch_size=args.batch_size)
    except DataStoreError as exc:
        return _fail(exc)
    print(report)
    return 0


def _search(args: argparse.Namespace) -> int:
    import astropy.units as u

    from .search import search
    from .store import DataStoreError

    cone = (args.cone[0], args.cone[1], args.cone[2] * u.arcsec) if args.cone else None
    polygon = None
    if args.polygon:
        if len(args.polygon) < 6 or len(args.polygon) % 2:
            return _fail(ValueError("--polygon needs at least three ra dec pairs"))
        polygon = [args.polygon[i : i + 2] for i in range(0, len(args.polygon), 2)]
    from .mast import MastArchive  # light: astroquery is imported when it is used

    mast: bool | MastArchive = False
    if args.mast:
        mast = MastArchive(None if args.mast == "default" else args.mast)
    try:
        table = search(
            cone,
            polygon=polygon,
            level=args.level,
            optical_element=args.optical_element,
            detector=args.detector,
            start=args.start,
            end=args.end,
            store=_store(args),
            mast=mast,
        )
    except (DataStoreError, ValueError) as exc:
        return _fail(exc)
    if args.output:
        if args.output.endswith(".parquet"):
            table.write(args.output, format="parquet", overwrite=True)
        else:
            table.write(args.output, overwrite=True)
        print(f"{len(table)} products written to {args.output}")
    else:
        cols = [
            c
            for c in (
                "path",
                "level",
                "detector",
                "optical_element",
                "start_time",
                "exposure_time",
                "source",
            )
            if c in table.colnames
        ]
        table[cols].pprint(max_lines=-1, max_width=-1)
        print(f"{len(table)} products")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from ..sample import SampleSpec, make_sample
    from .store import DataStoreError

    spec = SampleSpec(
        ra=args.ra,
        dec=args.dec,
        detectors=tuple(args.detectors),
        optical_elements=tuple(o.upper() for o in args.optical_elements),
        epochs=args.epochs,
        size=args.size,
        psf_grid=args.psf_grid,
    )
    try:
        result = make_sample(_store(args), spec, prefix=args.prefix, psf_library=not args.no_psf)
    except DataStoreError as exc:
        return _fail(exc)
    print(
        f"staged {len(result['products'])} products"
        + (f" and {len(result['psf'])} PSF library files" if result.get("psf") else "")
    )
    print(result["index"])
    return 0


def _psf(args: argparse.Namespace) -> int:
    from .psf import build_psf_library, psf
    from .store import DataStoreError

    try:
        store = _store(args)
        if args.build:
            written = build_psf_library(
                store,
                detectors=args.detectors,
                optical_elements=args.optical_elements,
                grid=args.grid,
                oversample=args.oversample,
            )
            print("\n".join(store.url(w) for w in written))
            from .index import build_index

            print(build_index(store, prefix="psf"))
        if args.at:
            model = psf(args.detectors[0], args.optical_elements[0], *args.at, store=store)
            print(model)
    except (DataStoreError, FileNotFoundError, ValueError) as exc:
        return _fail(exc)
    if not args.build and not args.at:
        return _fail(ValueError("give --build and/or --at X Y"))
    return 0
