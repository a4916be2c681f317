"""Reading products out of the store: lazily opened models, sky cutouts, downloads.

``open`` hands the store's file object (ranged reads on S3) to ASDF with lazy blocks, so a
``roman_datamodels`` model costs its metadata until an array is touched, and then only that
array's block is fetched. ``cutout`` reads one image array and returns the sub-array around a
sky position with a gwcs shifted to the cutout's own pixel frame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .safe_asdf import AsdfInputError, check_asdf
from .store import ENV_URL, Store, get_store

__all__ = ["open_product", "cutout", "download", "Cutout"]

#: S3 read-ahead: 8 MiB doubles full-product throughput over 1 MiB (fewer GETs per array,
#: measured with benchmarks/data/bench_read.py) for ~50 ms more at open
S3_BLOCK = 2**23


def _resolve(product: Any, store: Store | str | None) -> tuple[Store, str]:
    """(store, relative path) from a search row, a relative path or a full URL."""
    if hasattr(product, "colnames") and "path" in product.colnames:  # astropy Row
        path = str(product["path"])
        if store is None and "store" in product.colnames and product["store"]:
            store = str(product["store"])  # a row of the user's own products (search.py)
        if store is None:
            table_meta = getattr(getattr(product, "table", None), "meta", {}) or {}
            store = table_meta.get("store") or None
        if "source" in product.colnames and str(product["source"]) == "mast":
            raise ValueError("this row is a MAST product: fetch it with platform_lib.data.mast")
        return get_store(store), path
    if isinstance(product, dict) and "path" in product:
        return get_store(store or product.get("store")), str(product["path"])
    text = os.fspath(product)
    if text.startswith(("s3://", "s3a://")):
        if store is None:
            bucket, _, key = text.split("://", 1)[1].partition("/")
            return get_store(f"s3://{bucket}"), key
        store = get_store(store)
        return store, store.relative(text)
    if store is None:
        p = Path(text)
        # A path inside the configured store ("L2/x_cal.asdf", as search rows and the CLIs give
        # them) means that store, as it does in every other call here; only a file that exists
        # on this machine (or no store configured) means the local file.
        if not p.is_absolute() and not p.exists() and os.environ.get(ENV_URL):
            return get_store(), text
        p = p.resolve()
        return get_store(p.parent), p.name
    return get_store(store), text


def open_product(product: Any, store: Store | str | None = None):
    """A ``roman_datamodels`` model of a product, read lazily (close it, or use ``with``).

    An L4 source catalog (``*_cat.parquet``) opens as an astropy ``QTable`` (units kept); the
    platform's own segmentation map (an ASDF ``roman_platform`` tree) as its ``AsdfFile``.
    """
    import asdf
    import roman_datamodels as rdm

    from .l4 import is_catalog

    store, rel = _resolve(product, store)
    if is_catalog(rel):
        from astropy.table import QTable

        from .._parquet import astropy_table

        return QTable(astropy_table(store.read_bytes(rel)))
    kwargs = {"block_size": S3_BLOCK, "cache_type": "readahead"} if store.is_s3 else {}
    fileobj = store.open(rel, "rb", **kwargs)
    try:
        try:
            check_asdf(fileobj)  # an alias bomb or a cut-short file: one clear error, no hang
        except AsdfInputError as exc:
            raise AsdfInputError(f"{store.url(rel)}: {exc}") from None
        # close=True: closing the model (its ASDF file) closes the store's file object too
        generic = asdf.generic_io.get_file(fileobj, mode="r", uri=store.url(rel), close=True)
        af = asdf.open(generic, lazy_load=True, memmap=False)
        if "roman" not in af.tree and "roman_platform" in af.tree:
            return af
        return rdm.open(af)
    except Exception:
        fileobj.close()
        raise


@dataclass
class Cutout:
    """A sub-array by sky position: ``data`` with its ``wcs`` (gwcs, cutout pixel frame)."""

    data: np.ndarray
    wcs: Any
    origin: tuple[int, int]  # (x, y) of the cutout's pixel (0, 0) in the product
    path: str

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape


def _shifted_wcs(wcs: Any, x0: int, y0: int, shape: tuple[int, int]):
    from astropy.modeling.models import Shift
    from gwcs import WCS

    forward = (Shift(x0) & Shift(y0)) | wcs.forward_transform
    out = WCS(forward_transform=forward, input_frame=wcs.input_frame, output_frame=wcs.output_frame)
    out.bounding_box = ((-0.5, shape[1] - 0.5), (-0.5, shape[0] - 0.5))
    return out


def cutout(
    product: Any, position: Any, size: Any, *, store: Store | str | None = None, array: str = "data"
) -> Cutout:
    """The ``size`` (pixels, or an angle Quantity; scalar or (ny, nx)) piece around ``position``.

    ``position`` is a SkyCoord. Parts outside the product are filled with NaN (as
    ``astropy.nddata.Cutout2D(mode='partial')`` does), so the cutout is always ``size``.
    """
    import astropy.units as u

    with open_product(product, store) as model:
        wcs = model.meta.wcs
        if wcs is None:
            raise ValueError(
                f"{product!r} has no WCS (meta.wcs): L1 products cannot be cut by sky position"
            )
        x, y = wcs.invert(position.icrs.ra.deg, position.icrs.dec.deg, with_bounding_box=False)
        if hasattr(size, "unit"):
            # The local pixel scale, also where the position is outside the product (gWCS gives
            # NaN outside its bounding box, which made a negative cutout shape) and across RA 0.
            (ra0, dec0), (ra1, dec1) = (wcs(xx, y, with_bounding_box=False) for xx in (x, x + 1))
            dra = (float(ra1) - float(ra0) + 180.0) % 360.0 - 180.0
            scale = np.hypot(
                dra * np.cos(np.radians(position.icrs.dec.deg)), float(dec1) - float(dec0)
            )
            if not np.isfinite(scale) or scale <= 0:
                raise ValueError(
                    f"{product!r}: no pixel scale at {position.to_string()} (outside the WCS)"
                )
            size = np.atleast_1d(size.to_value(u.deg)) / scale
        ny, nx = (int(v) for v in np.broadcast_to(np.atleast_1d(np.round(size)).astype(int), (2,)))
        x0, y0 = int(np.round(float(x))) - nx // 2, int(np.round(float(y))) - ny // 2
        arr = getattr(model, array)
        full = np.asarray(arr)  # the one array fetched
        out = np.full((ny, nx), np.nan, dtype=np.result_type(full.dtype, np.float32))
        ys, xs = (
            slice(max(y0, 0), min(y0 + ny, full.shape[-2])),
            slice(max(x0, 0), min(x0 + nx, full.shape[-1])),
        )
        if ys.stop > ys.start and xs.stop > xs.start:
            out[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = full[..., ys, xs]
        _, rel = _resolve(product, store)
        return Cutout(data=out, wcs=_shifted_wcs(wcs, x0, y0, (ny, nx)), origin=(x0, y0), path=rel)


def download(
    product: Any, destination: str | os.PathLike, *, store: Store | str | None = None
) -> Path:
    """Copy a product to a local file or folder; returns the local path."""
    store, rel = _resolve(product, store)
    dest = Path(destination)
    if dest.is_dir():
        dest = dest / Path(rel).name
    dest.parent.mkdir(parents=True, exist_ok=True)
    store.fs.get_file(store.path(rel), str(dest))
    return dest
