"""Index rows for the L4 products the platform itself writes (``platform_lib.catalogs.outputs``).

The catalog pipeline writes a source catalog as astropy Parquet (``*_cat.parquet``, as romancal
does) and its segmentation map as an ASDF file whose tree is ``roman_platform`` (label array, the
WCS as a FITS header or a gwcs, and the catalog it belongs to). Neither has a ``roman`` tree, so
the generic reader refused them as "not a Roman product"; these readers give them the same index
columns as every other product: the catalog's footprint is the sky box around its sources, the
segmentation map's the footprint of its WCS over the label array.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from .._parquet import parquet_file

__all__ = ["CATALOG_SUFFIX", "catalog_row", "segmentation_row", "is_catalog"]

CATALOG_SUFFIX = "_cat.parquet"
#: catalog columns that hold the source positions (the platform's first, then romancal's)
_RA_DEC = (("ra", "dec"), ("ra_centroid", "dec_centroid"), ("ra_psf", "dec_psf"))
_BAND = re.compile(r"(?<![A-Z0-9])(F0\d\d|F1\d\d|F2\d\d|W146|R062|Z087|Y106|J129|H158|K213|F184)")


def is_catalog(path: str) -> bool:
    return path.endswith(CATALOG_SUFFIX)


def _band(*texts: Any) -> str | None:
    for text in texts:
        m = _BAND.search(str(text or "").upper())
        if m:
            return m.group(1)
    return None


def _box(ra: np.ndarray, dec: np.ndarray) -> np.ndarray | None:
    """Corners of the RA/Dec box around the points, robust to the RA=0 wrap."""
    ok = np.isfinite(ra) & np.isfinite(dec)
    if not ok.any():
        return None
    ra, dec = ra[ok] % 360.0, dec[ok]
    centre = np.degrees(np.arctan2(np.sin(np.radians(ra)).mean(), np.cos(np.radians(ra)).mean()))
    offset = (ra - centre + 180.0) % 360.0 - 180.0
    pad = 1.0 / 3600.0  # one arcsecond, so a single source still has an area
    lo, hi = offset.min() - pad, offset.max() + pad
    dlo, dhi = max(dec.min() - pad, -90.0), min(dec.max() + pad, 90.0)
    corners = np.array([[lo, dlo], [hi, dlo], [hi, dhi], [lo, dhi]])
    corners[:, 0] = (corners[:, 0] + centre) % 360.0
    return corners


def catalog_row(data: bytes, path: str = "") -> tuple[dict[str, Any], np.ndarray | None]:
    """(index fields, footprint corners) of a Parquet source catalog.

    Raises ``ValueError`` if the file is not a Parquet table with source positions.
    """
    try:
        pf = parquet_file(data)
    except Exception as exc:
        raise ValueError(f"unreadable Parquet catalog ({type(exc).__name__}: {exc})") from exc
    names = set(pf.schema_arrow.names)
    cols = next(((r, d) for r, d in _RA_DEC if r in names and d in names), None)
    if cols is None:
        raise ValueError("catalog has no source positions (no ra/dec columns)")
    meta = _astropy_meta(pf.schema_arrow.metadata or {})
    table = pf.read(columns=list(cols))
    ra = table.column(cols[0]).to_numpy(zero_copy_only=False).astype(float)
    dec = table.column(cols[1]).to_numpy(zero_copy_only=False).astype(float)
    fields = {
        "level": "L4",
        "product_type": "source_catalog",
        "optical_element": _band(meta.get("band"), path.rsplit("/", 1)[-1]),
        "shape": [int(pf.metadata.num_rows)],
    }
    return fields, _box(ra, dec)


def _astropy_meta(metadata: dict) -> dict:
    """The table ``meta`` astropy stored in the Parquet schema (``table_meta_yaml``)."""
    raw = metadata.get(b"table_meta_yaml")
    if not raw:
        return {}
    try:
        from astropy.io.misc.yaml import load

        header = load(raw.decode())
        return dict(header.get("meta") or {})
    except Exception:
        return {}


def segmentation_row(node: Any, path: str = "") -> tuple[dict[str, Any], np.ndarray | None]:
    """(index fields, footprint corners) of a ``roman_platform`` segmentation-map tree."""
    segm = node.get("segmentation") if hasattr(node, "get") else None
    if segm is None:
        raise ValueError("roman_platform tree without a segmentation array")
    shape = tuple(int(s) for s in segm.shape)
    meta = dict(node.get("meta") or {})
    fields = {
        "level": "L4",
        "product_type": "segmentation_map",
        "optical_element": _band(meta.get("band"), path.rsplit("/", 1)[-1]),
        "shape": list(shape),
    }
    return fields, _wcs_footprint(node.get("wcs"), shape)


def _wcs_footprint(wcs: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    if wcs is None or len(shape) < 2:
        return None
    ny, nx = shape[-2:]
    if isinstance(wcs, str):  # a FITS header (astropy.wcs.WCS.to_header_string)
        from astropy.io import fits
        from astropy.wcs import WCS

        w = WCS(fits.Header.fromstring(wcs))
        corners = np.asarray(w.calc_footprint(axes=(nx, ny)), dtype=float)
    elif hasattr(wcs, "footprint"):  # gwcs
        if getattr(wcs, "bounding_box", None) is None:
            wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
        corners = np.asarray(wcs.footprint(), dtype=float)
    else:
        return None
    return corners if corners.shape[-1] == 2 and np.isfinite(corners).all() else None
