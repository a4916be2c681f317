"""Writing L4 products into the data store without ever leaving half a product behind.

A catalog is an astropy Table in Parquet (``*_cat.parquet``, as romancal writes its catalogs),
the segmentation map an ASDF file (``*_segm.asdf``) holding the label array and the WCS it
refers to. Both are first written under temporary names in the destination folder and only
renamed into place once every file of the product is complete; any failure removes the
temporaries, so readers (and the product index) never see a partial product.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
from astropy.table import Table

from .._parquet import astropy_table, table_bytes


def _fs_and_path(url: str, storage_options: Mapping[str, Any] | None):
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    return fs, path.rstrip("/")


def read_catalog(url: str, storage_options: Mapping[str, Any] | None = None) -> Table:
    """A catalog written by :func:`write_products`, from any fsspec URL."""
    import fsspec

    with fsspec.open(url, "rb", **(storage_options or {})) as fh:
        return astropy_table(fh.read())


def _segm_bytes(segm: np.ndarray, wcs: Any, meta: Mapping[str, Any]) -> bytes:
    import asdf

    try:
        wcs_node: Any = wcs.to_header_string()  # astropy.wcs.WCS: a FITS header
    except AttributeError:
        wcs_node = wcs  # gwcs serialises natively
    tree = {
        "roman_platform": {
            "product": "L4 segmentation map",
            "segmentation": np.asarray(segm, dtype=np.uint32),
            "wcs": wcs_node,
            "meta": dict(meta),
        }
    }
    buf = io.BytesIO()
    asdf.AsdfFile(tree).write_to(buf)
    return buf.getvalue()


def write_products(
    prefix_url: str,
    name: str,
    *,
    catalog: Table,
    segmentation: np.ndarray | None = None,
    wcs: Any = None,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Write ``{name}_cat.parquet`` (and ``{name}_segm.asdf``) under ``prefix_url`` atomically.

    Returns the URLs written. On any error nothing new is left in the destination.
    """
    fs, base = _fs_and_path(prefix_url, storage_options)
    fs.makedirs(base, exist_ok=True)
    payload: dict[str, bytes] = {f"{name}_cat.parquet": table_bytes(catalog)}
    if segmentation is not None:
        meta = {"catalog": f"{name}_cat.parquet", "band": str(catalog.meta.get("band", ""))}
        payload[f"{name}_segm.asdf"] = _segm_bytes(segmentation, wcs, meta)
    token = uuid.uuid4().hex[:8]
    temps: dict[str, str] = {}
    try:
        for fname, data in payload.items():
            tmp = f"{base}/.{fname}.{token}.tmp"
            with fs.open(tmp, "wb") as fh:
                fh.write(data)
            temps[fname] = tmp
        for fname, tmp in temps.items():
            fs.mv(tmp, f"{base}/{fname}")
    except BaseException:
        for tmp in temps.values():
            try:
                fs.rm(tmp)
            except FileNotFoundError:
                pass
        raise
    protocol = prefix_url.split("://", 1)[0] + "://" if "://" in prefix_url else ""
    return {fname: f"{protocol}{base}/{fname}" for fname in payload}


def read_segmentation(url: str, storage_options: Mapping[str, Any] | None = None) -> np.ndarray:
    """The label array of a segmentation map written by :func:`write_products`."""
    import asdf
    import fsspec

    with fsspec.open(url, "rb", **(storage_options or {})) as fh:
        with asdf.open(io.BytesIO(fh.read()), lazy_load=False) as af:
            return np.asarray(af["roman_platform"]["segmentation"])
