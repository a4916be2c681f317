"""One index row from one product: the metadata of an ASDF product or an L4 catalog, never a pixel.

An ASDF product's tree is read lazily and unvalidated (its arrays stay unread blocks), after
:mod:`.safe_asdf` has refused alias bombs and truncated blocks; an L4 Parquet catalog's row
comes from :mod:`.l4`. Both get the same sky columns (s_region, centre, HEALPix cells) from
their corners. :mod:`.index` runs this over a whole store on Dask workers.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import numpy as np

from .footprint import ORDER, parse_s_region, polygon_cells, to_s_region
from .l4 import catalog_row, segmentation_row
from .safe_asdf import check_asdf, check_metadata

__all__ = ["LEVELS", "read_catalog_metadata", "read_product_metadata"]

log = logging.getLogger(__name__)

#: roman_datamodels tag name → processing level
LEVELS: dict[str, str] = {
    "wfi_science_raw": "L1",
    "ramp": "L1",
    "wfi_image": "L2",
    "wfi_mosaic": "L3",
    "segmentation_map": "L4",
    "mosaic_segmentation_map": "L4",
    "source_catalog": "L4",
    "mosaic_source_catalog": "L4",
    "image_source_catalog": "L4",
    "epsf": "PSF",
}


def _tag_name(node: Any) -> str:
    tag = getattr(node, "_tag", None) or getattr(node, "tag", None) or ""
    if not tag and hasattr(node, "__class__"):
        # roman_datamodels stnode objects: WfiImage → wfi_image
        import re

        name = type(node).__name__
        return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return str(tag).rsplit("/", 1)[-1].split("-", 1)[0]


def _get(node: Any, *keys: str, default: Any = None) -> Any:
    for key in keys:
        try:
            node = node[key]
        except (KeyError, TypeError, IndexError, AttributeError):
            try:
                node = getattr(node, key)
            except AttributeError:
                return default
        if node is None:
            return default
    return node


def _int(value: Any) -> int | None:
    try:
        value = int(value)
    except (TypeError, ValueError):
        return None
    return None if value == -999999 else value


def _float(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if value == -999999 or not np.isfinite(value) else value


def _str(value: Any) -> str | None:
    if value is None:
        return None
    value = str(value)
    return None if value in {"?", ""} else value


def _footprint(meta: Any, shape: tuple[int, ...] | None) -> np.ndarray | None:
    """Corner polygon from the WCS (preferred) or from ``wcsinfo.s_region``."""
    wcs = _get(meta, "wcs")
    if wcs is not None and hasattr(wcs, "footprint"):
        try:
            if getattr(wcs, "bounding_box", None) is None and shape:
                ny, nx = shape[-2:]
                wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
            corners = np.asarray(wcs.footprint(), dtype=float)
            if corners.shape[-1] == 2 and np.isfinite(corners).all():
                return corners
        except Exception as exc:
            log.debug("footprint from WCS failed: %s", exc)
    return parse_s_region(_str(_get(meta, "wcsinfo", "s_region")) or "")


@contextlib.contextmanager
def _open_tree(fileobj: Any):
    """The ASDF file with lazy blocks and a lazy tree, not validated against its schemas.

    Validation is ~90 % of the cost of reading a product's tree and the index does not need it
    (a product that does not parse is reported anyway); lazy_tree converts only the nodes read.
    """
    import asdf

    # not asdf.config_context(): a fresh context reloads every extension (~0.4 s per file)
    config = asdf.get_config()
    previous = config.validate_on_read
    config.validate_on_read = False
    try:
        with asdf.open(fileobj, lazy_load=True, memmap=False, lazy_tree=True) as af:
            yield af
    finally:
        config.validate_on_read = previous


def read_product_metadata(fileobj: Any, path: str = "") -> dict[str, Any]:
    """One index row from an open ASDF file: metadata only, arrays left unread.

    Raises ``ValueError`` (with the reason) if this is not a readable Roman ASDF product.
    """
    from astropy.time import Time

    try:
        check_asdf(fileobj)  # alias bombs, truncated blocks: refused before asdf reads them
        with _open_tree(fileobj) as af:
            roman = af.tree.get("roman")
            if roman is None and "roman_platform" in af.tree:
                # an L4 segmentation map written by platform_lib.catalogs.outputs
                fields, corners = segmentation_row(af.tree["roman_platform"], path)
                return _with_sky({"path": path, **fields}, corners)
            if roman is None:
                raise ValueError("ASDF file has no 'roman' tree (not a Roman product)")
            meta = _get(roman, "meta")
            if meta is None:
                raise ValueError("Roman product without 'meta'")
            check_metadata(meta, _get)
            tag = _tag_name(roman)
            data = _get(roman, "data")
            shape = tuple(int(s) for s in getattr(data, "shape", ()) or ())
            start = _get(meta, "exposure", "start_time")
            start_time = start_mjd = None
            if start is not None:
                try:
                    t = Time(start)
                    start_time, start_mjd = t.utc.isot, float(t.mjd)
                except Exception:
                    pass
            corners = _footprint(meta, shape)
            row: dict[str, Any] = {
                "path": path,
                "level": LEVELS.get(tag, "L4" if "catalog" in tag or "segm" in tag else None),
                "product_type": tag,
                "program": _int(_get(meta, "observation", "program")),
                "visit": _int(_get(meta, "observation", "visit")),
                "exposure": _int(_get(meta, "observation", "exposure")),
                "observation_id": _str(_get(meta, "observation", "observation_id")),
                "detector": _str(_get(meta, "instrument", "detector")),
                "optical_element": _str(_get(meta, "instrument", "optical_element")),
                "start_time": start_time,
                "start_mjd": start_mjd,
                "exposure_time": _float(_get(meta, "exposure", "exposure_time")),
                "shape": list(shape),
            }
            if row["level"] is None:
                row["level"] = "L3" if "mosaic" in tag else None
    except ValueError as exc:
        if "appear to be a ASDF" in str(exc):
            raise ValueError("not an ASDF file (no '#ASDF' header line)") from exc
        raise
    except Exception as exc:
        raise ValueError(f"unreadable ASDF ({type(exc).__name__}: {exc})") from exc
    return _with_sky(row, corners)


def read_catalog_metadata(data: bytes, path: str = "") -> dict[str, Any]:
    """One index row from an L4 Parquet source catalog's bytes (see ``platform_lib.data.l4``)."""
    fields, corners = catalog_row(data, path)
    return _with_sky({"path": path, **fields}, corners)


def _with_sky(row: dict[str, Any], corners: np.ndarray | None) -> dict[str, Any]:
    """The footprint columns (s_region, centre, HEALPix cells) of a row from its corners."""
    if corners is not None:
        row["s_region"] = to_s_region(corners)
        ra, dec = corners[:, 0], corners[:, 1]
        vec = np.stack(
            [
                np.cos(np.radians(dec)) * np.cos(np.radians(ra)),
                np.cos(np.radians(dec)) * np.sin(np.radians(ra)),
                np.sin(np.radians(dec)),
            ],
            axis=-1,
        ).mean(axis=0)
        row["ra_center"] = float(np.degrees(np.arctan2(vec[1], vec[0])) % 360)
        row["dec_center"] = float(np.degrees(np.arcsin(vec[2] / np.linalg.norm(vec))))
        row["cells"] = polygon_cells(corners, ORDER).tolist()
    else:
        row.update(s_region=None, ra_center=None, dec_center=None, cells=[])
    return row
