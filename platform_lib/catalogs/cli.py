"""``roman-platform catalog``: static, difference-imaging and variability catalogs from the
products in the data store, written as L4 products into the user's own store
(``$ROMAN_USER_STORE_URL``; see :mod:`platform_lib.data.user_store`), never into the survey."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "catalog",
        help="static, variability and difference-imaging L4 catalogs",
        description=(
            "Build L4 catalogs from L2/L3 products in the data store (paths relative to the store, "
            "or full URLs; default $ROMAN_DATA_URL). Outputs go to --out: a folder in your own store "
            "($ROMAN_USER_STORE_URL, or --store when given) or a full URL."
        ),
    )
    sub = p.add_subparsers(dest="catalog_command", metavar="ACTION")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--store", default=None, help="data store URL (default $ROMAN_DATA_URL)")
        sp.add_argument(
            "--endpoint", default=None, help="S3 endpoint URL (default $ROMAN_DATA_S3_ENDPOINT)"
        )

    st = sub.add_parser(
        "static",
        help="one field: a single- or multi-band static catalog",
        description="Detect, deblend and measure; with several optical elements of one "
        "field (one pixel grid), forced PSF-matched photometry in every band and photo-z.",
    )
    common(st)
    st.add_argument(
        "products", nargs="+", help="L2/L3 products of one field, one per optical element"
    )
    st.add_argument(
        "--name",
        required=True,
        help="product name stem, e.g. field042 (writes NAME_cat.parquet, NAME_segm.asdf)",
    )
    st.add_argument("--out", default="L4", help=OUT_HELP)
    st.add_argument(
        "--reference", help="Gaia-like reference catalog in the store (ra, dec columns) to align to"
    )
    st.set_defaults(func=_static)

    df = sub.add_parser("diff", help="difference imaging: the most recent image against the others")
    common(df)
    df.add_argument("products", nargs="+", help="overlapping rectified products of one band (≥2)")
    df.add_argument(
        "--name", required=True, help="product name stem (writes NAME_diff_cat.parquet)"
    )
    df.add_argument("--out", default="L4", help=OUT_HELP)
    df.add_argument(
        "--threshold", type=float, default=5.0, help="detection threshold in sigma (default 5)"
    )
    df.set_defaults(func=_diff)

    lc = sub.add_parser(
        "lightcurves",
        help="forced photometry of a static catalog on every image; variability indices",
    )
    common(lc)
    lc.add_argument(
        "products", nargs="+", help="individual L2/L3 images covering the catalog's sources"
    )
    lc.add_argument(
        "--catalog",
        required=True,
        help="static catalog (NAME_cat.parquet): in your own store, the data store, or a URL",
    )
    lc.add_argument(
        "--lightcurve-store",
        default="variability",
        help="folder for the light curves (per-image ingest files and their HATS collections; "
        "your own store, as --out) or a URL",
    )
    lc.set_defaults(func=_lightcurves)

    va = sub.add_parser(
        "variables",
        help="query variability indices by position and threshold (the HATS collection, via LSDB)",
    )
    common(va)
    va.add_argument(
        "--lightcurve-store",
        default="variability",
        help="folder in the store of the light-curve dataset",
    )
    va.add_argument(
        "--cone",
        nargs=3,
        type=float,
        metavar=("RA", "DEC", "RADIUS_ARCSEC"),
        help="only sources within RADIUS_ARCSEC of RA DEC (deg)",
    )
    va.add_argument("--min-chi2", type=float, help="minimum reduced chi-square")
    va.add_argument("--min-stetson-j", type=float, help="minimum Stetson J")
    va.set_defaults(func=_variables)


OUT_HELP = (
    "folder for the outputs in your own store ($ROMAN_USER_STORE_URL; with --store, in "
    "that store), or a full URL (default L4)"
)


def _out(args: argparse.Namespace, out: str):
    """(store, folder) the outputs go to, checked writable now (one clear line if not)."""
    from platform_lib.data.user_store import ensure_writable, output_location

    store, rel = output_location(out, args.store, args.endpoint)
    ensure_writable(store, rel)
    return store, rel


def _read_location(args: argparse.Namespace, path: str, store) -> tuple[str, dict]:
    """(URL, storage options) of an input: one the user made (their own store) before one in
    the data store."""
    from platform_lib.data.user_store import is_location, output_location

    if is_location(path):
        return path, _options(store)
    mine, rel = output_location(path, args.store, args.endpoint)
    if mine.exists(rel):
        return mine.url(rel), _options(mine)
    return store.url(path), _options(store)


def _store(args: argparse.Namespace):
    from platform_lib.data.store import get_store

    return get_store(args.store, endpoint=args.endpoint)


def _options(store) -> dict:
    return dict(getattr(store, "storage_options", {}) or {})


def _fail(exc: Exception) -> int:
    print(f"roman-platform catalog: {exc}", file=sys.stderr)
    return 1


def _static(args: argparse.Namespace) -> int:
    from .astrometry import read_reference
    from .errors import CatalogInputError
    from .field import catalog_fields

    store = _store(args)
    out, rel = _out(args, args.out)
    try:
        ref = (
            read_reference(*_read_location(args, args.reference, store)) if args.reference else None
        )
        result = catalog_fields(
            {args.name: args.products},
            out.url(rel),
            store=store,
            reference=ref,
            storage_options=_options(out),
        )[args.name]
    except (CatalogInputError, FileNotFoundError, ValueError) as exc:
        return _fail(exc)
    if isinstance(result, BaseException):
        return _fail(result)  # type: ignore[arg-type]
    for url in result.values():
        print(url)
    return 0


def _diff(args: argparse.Namespace) -> int:
    from .field import difference_fields

    store = _store(args)
    out, rel = _out(args, args.out)
    result = difference_fields(
        {args.name: args.products},
        out.url(rel),
        store=store,
        threshold=args.threshold,
        storage_options=_options(out),
    )[args.name]
    if isinstance(result, BaseException):
        return _fail(result)  # type: ignore[arg-type]
    for url in result.values():
        print(url)
    return 0


def _lightcurves(args: argparse.Namespace) -> int:
    import numpy as np

    from .outputs import read_catalog
    from .variability import LightCurveStore, build_lightcurves

    store = _store(args)
    out, rel = _out(args, args.lightcurve_store)
    try:
        sources = read_catalog(*_read_location(args, args.catalog, store))
    except FileNotFoundError as exc:
        return _fail(exc)
    if "source_id" not in sources.colnames:
        sources["source_id"] = np.asarray(sources["label"])
    lcs = LightCurveStore(out.url(rel), storage_options=_options(out))
    items = [(str(p).replace("/", "_"), _Loader(p, store)) for p in args.products]
    indices = build_lightcurves(sources, items, lcs)
    for img, err in indices.meta["failed_images"].items():
        print(f"failed: {img}: {err}", file=sys.stderr)
    print(
        f"{indices.meta['rows_written']} measurements; indices for {len(indices)} sources in "
        f"{lcs.url} (HATS collections: {lcs.hats_url})"
    )
    return 1 if indices.meta["failed_images"] else 0


class _Loader:
    """Picklable (product, store) → CatalogImage, read on the Dask worker."""

    def __init__(self, product: str, store) -> None:
        self.product, self.store = product, store

    def __call__(self):
        from .field import load_image

        return load_image(self.product, store=self.store)


def _variables(args: argparse.Namespace) -> int:
    from platform_lib.data.user_store import output_location

    from .errors import CatalogInputError
    from .variability import LightCurveStore

    store, rel = output_location(args.lightcurve_store, args.store, args.endpoint)
    lcs = LightCurveStore(store.url(rel), storage_options=_options(store))
    ra = dec = radius = None
    if args.cone:
        ra, dec, radius = args.cone
    try:
        t = lcs.indices(
            ra=ra,
            dec=dec,
            radius_arcsec=radius,
            min_chi2=args.min_chi2,
            min_stetson_j=args.min_stetson_j,
        )
    except CatalogInputError as exc:
        return _fail(exc)
    t.pprint(max_lines=-1, max_width=-1)
    return 0
