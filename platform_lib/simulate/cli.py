"""``roman-platform simulate``: scenes, images, surveys and injection from the command line.

Heavy imports (romanisim, galsim, dask) happen inside the handlers so ``--help`` stays fast.
Every input error is reported as one line on stderr with exit status 2, before anything is
written.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..instrument import DETECTORS


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _read_table(path: str):
    import io

    import fsspec
    from astropy.table import Table

    from .._parquet import astropy_table
    from .errors import SimulationInputError

    fmt = "ascii.ecsv" if path.endswith(".ecsv") else None
    try:
        with fsspec.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as exc:
        raise SimulationInputError(f"catalog {path} not found") from exc
    try:
        if fmt == "ascii.ecsv":
            return Table.read(data.decode(), format=fmt)
        if path.endswith(".parquet"):
            return astropy_table(data)
        return Table.read(io.BytesIO(data), format="fits")
    except Exception as exc:
        raise SimulationInputError(f"cannot read catalog {path}: {exc}") from exc


def _write_table(table, dest: str) -> str:
    import io
    import os

    from .output import get_store

    head, name = os.path.split(dest.rstrip("/"))
    store = get_store(head or ".")
    buf = io.StringIO()
    table.write(buf, format="ascii.ecsv")
    store.write_bytes(name, buf.getvalue().encode())
    return store.url(name)


def _effects(args) -> Any:
    from .effects import InstrumentEffects

    if args.ideal:
        return InstrumentEffects.none(
            read_noise=None if args.read_noise is None else args.read_noise
        )
    return InstrumentEffects(
        cosmic_rays=not args.no_cosmic_rays,
        persistence=args.persistence,
        ipc=not args.no_ipc,
        nonlinearity=not args.no_nonlinearity,
        read_noise=args.read_noise,
        dark=args.dark,
    )


def _footprint(args):
    from .cutout import Footprint

    if args.full_detector:
        return Footprint.full()
    center = tuple(args.cutout_center) if args.cutout_center else None
    return Footprint.cutout(args.cutout, center)


def _scene(args) -> int:
    from .scenes import combine, galaxy_field, star_field

    elements = _csv(args.elements)
    center = tuple(args.center)
    parts = []
    if args.stars:
        parts.append(
            star_field(
                center,
                args.radius,
                n=args.stars,
                elements=elements,
                mag_range=tuple(args.star_mags),
                seed=args.seed,
            )
        )
    if args.galaxies:
        parts.append(
            galaxy_field(
                center,
                args.radius,
                n=args.galaxies,
                elements=elements,
                mag_range=tuple(args.galaxy_mags),
                seed=args.seed + 1,
            )
        )
    if not parts:
        print("error: ask for --stars and/or --galaxies", file=sys.stderr)
        return 2
    url = _write_table(combine(*parts), args.out)
    print(url)
    return 0


def _image(args) -> int:
    from .images import ExposureSpec, simulate_exposure
    from .mosaic import MosaicSpec, simulate_mosaic
    from .output import write_product

    catalog = _read_table(args.catalog)
    if args.level == 3:
        spec = MosaicSpec(
            optical_element=args.element,
            ra=args.ra,
            dec=args.dec,
            shape=(args.cutout, args.cutout),
            seed=args.seed,
            date=args.date,
            name=args.name,
        )
        sim = simulate_mosaic(catalog, spec)
        filename = spec.filename
    else:
        exposure = ExposureSpec(
            optical_element=args.element,
            detector=args.detector,
            ra=args.ra,
            dec=args.dec,
            pa=args.pa,
            start_time=args.date,
            ma_table=args.ma_table,
            level=args.level,
            footprint=_footprint(args),
            seed=args.seed,
            name=args.name,
        )
        sim = simulate_exposure(
            catalog, exposure, _effects(args), reference_data=args.reference_set
        )
        filename = exposure.filename
    paths = write_product(sim, args.out, filename)
    print(paths["image"])
    print(paths["truth"])
    return 0


def _survey(args) -> int:
    from .survey import plan_survey, run_survey

    catalog = _read_table(args.catalog)
    pointings = plan_survey(
        tuple(args.center),
        optical_elements=_csv(args.elements),
        epochs=args.epochs,
        cadence_days=args.cadence,
        start_time=args.date,
        dithers=args.dithers,
        ma_table=args.ma_table,
    )
    manifest = run_survey(
        catalog,
        pointings,
        args.out,
        detectors=_csv(args.detectors),
        level=args.level,
        footprint=_footprint(args),
        effects=_effects(args),
        seed=args.seed,
        reference_data=args.reference_set,
        serial=args.serial,
        show_progress=True,
    )
    print(f"{len(manifest)} products written under {args.out} (survey_manifest.ecsv)")
    return 0


def _inject(args) -> int:
    from .inject import inject_file

    catalog = _read_table(args.catalog)
    paths = inject_file(args.image, catalog, args.out, args.name, seed=args.seed)
    print(paths["image"])
    print(paths["truth"])
    return 0


def _add_exposure_args(p: argparse.ArgumentParser, survey: bool = False) -> None:
    p.add_argument(
        "--level",
        type=int,
        default=2,
        choices=(1, 2) if survey else (1, 2, 3),
        help="1: L1 ramps (uncal), 2: L2 rate image (cal), 3: L3 mosaic",
    )
    p.add_argument("--ma-table", type=int, default=4, help="MA table number (default 4)")
    p.add_argument("--date", default="2027-06-01T00:00:00", help="start time (ISO, UTC)")
    p.add_argument(
        "--cutout",
        type=int,
        default=256,
        help="cutout size in pixels (default 256; ignored with --full-detector)",
    )
    p.add_argument(
        "--cutout-center",
        type=float,
        nargs=2,
        metavar=("X", "Y"),
        help="detector pixel at the cutout centre (default: detector centre)",
    )
    p.add_argument("--full-detector", action="store_true", help="simulate all 4088x4088 pixels")
    p.add_argument("--reference-set", help="reference-file set folder/URL (romanisim uses it)")
    p.add_argument(
        "--ideal",
        action="store_true",
        help="no cosmic rays, IPC, non-linearity, persistence, sky, dark or pedestal; "
        "read noise stays unless --read-noise 0",
    )
    p.add_argument("--no-cosmic-rays", action="store_true", help="do not add cosmic rays")
    p.add_argument("--no-ipc", action="store_true", help="no inter-pixel capacitance")
    p.add_argument("--no-nonlinearity", action="store_true", help="a linear detector response")
    p.add_argument("--persistence", action="store_true", help="simulate persistence")
    p.add_argument("--read-noise", type=float, help="read noise override (DN)")
    p.add_argument("--dark", type=float, help="dark current override (electrons/s)")
    p.add_argument(
        "--seed", type=int, default=0, help="random seed; the same seed gives the same image"
    )
    p.add_argument("--out", required=True, help=OUT_HELP)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate scenes, images (L1/L2/L3), surveys; inject sources",
        description="Simulations on romanisim and galsim. Products are roman_datamodels ASDF "
        "files with a truth catalog (ECSV) beside each.",
    )
    sub = parser.add_subparsers(dest="simulate_command", metavar="WHAT", required=True)

    p = sub.add_parser("scene", help="make a source catalog (stars and/or galaxies)")
    p.add_argument(
        "--center",
        type=float,
        nargs=2,
        metavar=("RA", "DEC"),
        required=True,
        help="centre of the scene (deg)",
    )
    p.add_argument("--radius", type=float, default=0.1, help="cap radius (deg)")
    p.add_argument("--stars", type=int, default=0, help="number of stars")
    p.add_argument("--galaxies", type=int, default=0, help="number of galaxies")
    p.add_argument(
        "--star-mags",
        type=float,
        nargs=2,
        default=(18.0, 26.0),
        metavar=("BRIGHT", "FAINT"),
        help="AB magnitude range of the stars (default 18 26)",
    )
    p.add_argument(
        "--galaxy-mags",
        type=float,
        nargs=2,
        default=(20.0, 27.0),
        metavar=("BRIGHT", "FAINT"),
        help="AB magnitude range of the galaxies (default 20 27)",
    )
    p.add_argument(
        "--elements",
        default="F062,F087,F106,F129,F158,F184,F213,F146",
        help="optical elements to give fluxes in (comma separated)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed for positions and fluxes")
    p.add_argument(
        "--out",
        required=True,
        help="catalog file to write (.ecsv): a URL, a ./ or absolute path, or a path in "
        "your own store ($ROMAN_USER_STORE_URL, when set)",
    )
    p.set_defaults(func=_guard(_scene))

    p = sub.add_parser("image", help="simulate one detector exposure (L1/L2) or a mosaic (L3)")
    p.add_argument("--catalog", required=True, help="scene catalog (.ecsv/.fits/.parquet)")
    p.add_argument("--element", default="F158", help="optical element")
    p.add_argument("--detector", default="WFI02", help="WFI01..WFI18")
    p.add_argument("--ra", type=float, default=270.0, help="pointing (WFI_CEN) RA")
    p.add_argument("--dec", type=float, default=66.0, help="pointing (WFI_CEN) Dec")
    p.add_argument("--pa", type=float, default=0.0, help="aperture position angle (deg)")
    p.add_argument("--name", default="sim", help="product name prefix")
    _add_exposure_args(p)
    p.set_defaults(func=_guard(_image))

    p = sub.add_parser("survey", help="pointings x detectors as a Dask graph into the store")
    p.add_argument("--catalog", required=True, help="scene catalog (.ecsv/.fits/.parquet)")
    p.add_argument(
        "--center",
        type=float,
        nargs=2,
        metavar=("RA", "DEC"),
        required=True,
        help="pointing centre of the survey (deg)",
    )
    p.add_argument(
        "--elements", default="F158", help="optical elements, comma separated (default F158)"
    )
    p.add_argument("--epochs", type=int, default=1, help="visits of the field (default 1)")
    p.add_argument("--cadence", type=float, default=5.0, help="days between epochs")
    p.add_argument("--dithers", default="none", help="none, line2, box4, box4-large")
    p.add_argument(
        "--detectors",
        default=",".join(str(int(d[3:])) for d in DETECTORS),
        help="detector numbers, comma separated (default: all 18)",
    )
    p.add_argument("--serial", action="store_true", help="run in this process, not on Dask")
    _add_exposure_args(p, survey=True)
    p.set_defaults(func=_guard(_survey))

    p = sub.add_parser("inject", help="inject sources into an existing L2/L3 file")
    p.add_argument("--image", required=True, help="L2 or L3 ASDF file (path or URL)")
    p.add_argument("--catalog", required=True, help="catalog of the sources to inject")
    p.add_argument("--name", help="output file name (default: <input>_injected.asdf)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the injected noise")
    p.add_argument("--out", required=True, help=OUT_HELP)
    p.set_defaults(func=_guard(_inject))


OUT_HELP = (
    "where to write: a data store URL (s3://...), a ./ or absolute folder, or a folder in "
    "your own store ($ROMAN_USER_STORE_URL, when set; else a local folder)"
)


def _guard(handler):
    """Turn input errors into one clear line and exit status 2."""

    def run(args) -> int:
        from .errors import SimulationInputError

        try:
            if getattr(args, "out", None):
                from platform_lib.data.user_store import resolve_output

                args.out = resolve_output(args.out, is_file=args.simulate_command == "scene")
            return handler(args)
        except SimulationInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return run
