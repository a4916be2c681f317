"""Sky and metadata search over the product index → an astropy Table.

The index is loaded once per store (and reloaded when its Parquet file changes). A sky query
first takes the products sharing a HEALPix cell with the query region (a sorted cell array and
``searchsorted``, so it does not scan every product), then applies the exact footprint test
(``platform_lib.data.footprint``) to those candidates only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .footprint import (
    ORDER,
    cone_cells,
    cone_overlaps_polygon,
    parse_s_region,
    polygon_cells,
    polygons_overlap,
)
from .index import INDEX_PATH, load_index
from .query import as_list, cone_args, polygon_args, to_mjd
from .store import Store, get_store

__all__ = ["ProductIndex", "search", "get_index", "with_units"]


@dataclass
class ProductIndex:
    """An in-memory, queryable copy of the index table (a ``pyarrow.Table``)."""

    table: Any
    store_url: str = ""

    def __post_init__(self) -> None:
        t = self.table
        self.n = t.num_rows
        self._cols = {
            c: t.column(c).to_numpy(zero_copy_only=False)
            for c in (
                "level",
                "detector",
                "optical_element",
                "start_mjd",
                "program",
                "product_type",
            )
        }
        cells = t.column("cells")
        offsets = cells.combine_chunks().offsets.to_numpy() if self.n else np.zeros(1, np.int64)
        flat = cells.combine_chunks().values.to_numpy() if self.n else np.zeros(0, np.int64)
        rows = np.repeat(np.arange(self.n), np.diff(offsets))
        order = np.argsort(flat, kind="stable")
        self._cell_values = flat[order]
        self._cell_rows = rows[order]
        self._s_region = t.column("s_region").to_pylist() if self.n else []
        self._polys: dict[int, np.ndarray | None] = {}

    def polygon(self, i: int) -> np.ndarray | None:
        if i not in self._polys:
            self._polys[i] = parse_s_region(self._s_region[i] or "")
        return self._polys[i]

    def candidates(self, cells: np.ndarray) -> np.ndarray:
        """Rows sharing at least one HEALPix cell with ``cells``."""
        lo = np.searchsorted(self._cell_values, cells, side="left")
        hi = np.searchsorted(self._cell_values, cells, side="right")
        if not len(cells) or not (hi - lo).any():
            return np.zeros(0, np.int64)
        idx = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi) if b > a])
        return np.unique(self._cell_rows[idx])

    def metadata_mask(
        self,
        *,
        level=None,
        optical_element=None,
        detector=None,
        program=None,
        product_type=None,
        start=None,
        end=None,
    ) -> np.ndarray:
        mask = np.ones(self.n, bool)
        for col, wanted in (
            ("level", level),
            ("optical_element", optical_element),
            ("detector", detector),
            ("product_type", product_type),
        ):
            wanted = as_list(wanted)
            if wanted is None:
                continue
            # level, element and detector are upper case in products; tags are lower case
            values = [str(w) if col == "product_type" else str(w).upper() for w in wanted]
            mask &= np.isin(self._cols[col].astype(str), values)
        if program is not None:
            mask &= np.isin(self._cols["program"], [int(p) for p in as_list(program)])
        mjd = self._cols["start_mjd"].astype(float)
        if start is not None:
            mask &= mjd >= to_mjd(start)
        if end is not None:
            mask &= mjd <= to_mjd(end)
        return mask

    def query(
        self, *, cone=None, polygon=None, prefilter: bool = True, **filters: Any
    ) -> np.ndarray:
        """Row numbers matching every criterion given (sky and metadata)."""
        if cone is not None and polygon is not None:
            raise ValueError("give cone= or polygon=, not both")
        mask = self.metadata_mask(**filters)
        if cone is None and polygon is None:
            return np.flatnonzero(mask)
        if cone is not None:
            ra, dec, radius = cone_args(cone)
            cells = cone_cells(ra, dec, radius, ORDER) if prefilter else None

            def hit(poly: np.ndarray) -> bool:
                return cone_overlaps_polygon(ra, dec, radius, poly)
        else:
            verts = polygon_args(polygon)
            cells = polygon_cells(verts, ORDER) if prefilter else None

            def hit(poly: np.ndarray) -> bool:
                return polygons_overlap(verts, poly)

        rows = self.candidates(cells) if cells is not None else np.arange(self.n)
        rows = rows[mask[rows]]
        keep = [i for i in rows if (p := self.polygon(int(i))) is not None and hit(p)]
        return np.asarray(sorted(keep), dtype=np.int64)

    def to_table(self, rows: Sequence[int] | np.ndarray):
        import pyarrow as pa
        from astropy.table import Table

        sub = self.table.take(np.asarray(rows, dtype=np.int64)).drop(["cells"])
        out = Table()
        for name, col in zip(sub.column_names, sub.columns):
            values = col.to_pylist()
            if pa.types.is_string(col.type):
                out[name] = np.array(["" if v is None else v for v in values], dtype=str)
            elif pa.types.is_floating(col.type):
                out[name] = np.array([np.nan if v is None else v for v in values], dtype=float)
            elif pa.types.is_integer(col.type):
                out[name] = np.ma.masked_array(
                    [0 if v is None else v for v in values],
                    mask=[v is None for v in values],
                    dtype=np.int64,
                )
            else:
                out[name] = np.array(values + [None], dtype=object)[:-1]
        out.meta["store"] = self.store_url
        return out


_CACHE: dict[str, tuple[str, ProductIndex]] = {}


def get_index(store: Store | str | None = None) -> ProductIndex:
    """The store's index, cached while its Parquet file is unchanged."""
    store = get_store(store)
    try:
        info = store.info(INDEX_PATH)
        version = str(info.get("ETag") or info.get("mtime") or info.get("size"))
    except FileNotFoundError:
        version = "none"
    cached = _CACHE.get(store.root_url)
    if cached and cached[0] == version:
        return cached[1]
    idx = ProductIndex(load_index(store), store.root_url)
    _CACHE[store.root_url] = (version, idx)
    return idx


def search(
    cone: Any = None,
    *,
    polygon: Any = None,
    level: str | Sequence[str] | None = None,
    optical_element: str | Sequence[str] | None = None,
    detector: str | Sequence[str] | None = None,
    program: int | Sequence[int] | None = None,
    product_type: str | Sequence[str] | None = None,
    start: Any = None,
    end: Any = None,
    store: Store | str | None = None,
    mast: bool | Any = False,
):
    """Products matching every criterion, as an ``astropy.table.Table`` (one row per product).

    ``cone``: ``(SkyCoord, radius)`` or ``(ra_deg, dec_deg, radius)``; ``polygon``: (ra, dec)
    vertices in degrees or a SkyCoord; ``start``/``end``: anything ``astropy.time.Time`` takes.
    The table's ``meta['store']`` is the store URL, which :func:`platform_lib.data.open` uses.
    ``mast=True`` (or a :class:`platform_lib.data.mast.MastArchive`) appends MAST's Roman
    products for the same cone, with ``source='mast'``.
    With the default store and ``$ROMAN_USER_STORE_URL`` set, the user's own indexed products
    (``roman-platform data index``) come too, with ``source='user'`` and a ``store`` column.
    """
    criteria = dict(
        cone=cone,
        polygon=polygon,
        level=level,
        optical_element=optical_element,
        detector=detector,
        program=program,
        product_type=product_type,
        start=start,
        end=end,
    )
    idx = get_index(store)
    table = idx.to_table(idx.query(**criteria))
    table["source"] = np.full(len(table), "store", dtype="U8")
    if store is None:
        table = _with_user_products(table, idx, criteria)
    if mast:
        from astropy.table import vstack

        from .mast import MastArchive

        archive = mast if isinstance(mast, MastArchive) else MastArchive()
        if cone is None:
            raise ValueError("a MAST search needs a cone")
        remote = archive.search(cone, optical_element=optical_element, level=level)
        if len(remote):
            table = vstack([table, remote], join_type="outer", metadata_conflicts="silent")
        table.meta["store"] = idx.store_url
    return with_units(table)


def _with_user_products(table, survey: ProductIndex, criteria: dict[str, Any]):
    """``table`` plus the matching rows of the user's own index, each row naming its store."""
    from .user_store import user_store

    mine = user_store()
    if mine is None or mine.root_url == survey.store_url or not mine.exists(INDEX_PATH):
        return table
    from astropy.table import vstack

    idx = get_index(mine)
    own = idx.to_table(idx.query(**criteria))
    if not len(own):
        return table
    own["source"] = np.full(len(own), "user", dtype="U8")
    table["store"] = np.full(len(table), survey.store_url, dtype=object)
    own["store"] = np.full(len(own), mine.root_url, dtype=object)
    out = vstack([table, own], join_type="outer", metadata_conflicts="silent")
    out.meta["store"] = survey.store_url
    return out


#: units of the index's numeric columns (the index stores plain numbers in these units)
UNITS = {"ra_center": "deg", "dec_center": "deg", "exposure_time": "s", "start_mjd": "d"}


def with_units(table):
    """Search results as astropy expects them: Quantity-like columns and ``Time`` columns.

    ``t_min``/``t_max`` (exposure start and end, ``astropy.time.Time``, UTC) sit next to the
    ISO ``start_time`` string, which stays for code that compares strings.
    """
    import astropy.units as u
    from astropy.time import Time

    for name, unit in UNITS.items():
        if name in table.colnames and table[name].unit is None:
            table[name].unit = u.Unit(unit)
    if "start_mjd" in table.colnames:
        mjd = np.asarray(table["start_mjd"], dtype=float)
        exptime = (
            np.asarray(table["exposure_time"], dtype=float)
            if "exposure_time" in table.colnames
            else np.zeros(len(table))
        )
        missing = ~np.isfinite(mjd)
        start = Time(np.where(missing, 0.0, mjd), format="mjd", scale="utc")
        end = Time(
            np.where(missing, 0.0, mjd + np.nan_to_num(exptime) / 86400.0),
            format="mjd",
            scale="utc",
        )
        if missing.any():
            start[missing] = np.ma.masked
            end[missing] = np.ma.masked
        table["t_min"], table["t_max"] = start, end
    return table
