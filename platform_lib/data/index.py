"""The product index: what is in the store, where on the sky, read from ASDF metadata only.

``build_index(store)`` lists the store, reads the ASDF tree (never a pixel array: arrays stay
lazy blocks) of every product not yet indexed, on Dask workers through
``platform_lib.compute``, and writes one Parquet table back into the store
(``_index/products.parquet``), so every user of the store shares it and nobody re-reads a file.
Re-running only reads files that are new or changed (by size and ETag/mtime), and forgets files
that are gone. A file that is not readable ASDF (truncated, another format) is reported with its
path and reason in ``_index/errors.parquet`` and skipped: one bad file never stops an index.
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._parquet import arrow_table
from .l4 import CATALOG_SUFFIX, is_catalog
from .metadata import LEVELS, read_catalog_metadata, read_product_metadata
from .store import DataStoreError, Store, get_store

__all__ = [
    "INDEX_PATH",
    "ERRORS_PATH",
    "IndexReport",
    "build_index",
    "load_index",
    "read_product_metadata",
    "LEVELS",
]

log = logging.getLogger(__name__)

INDEX_DIR = "_index"
INDEX_PATH = f"{INDEX_DIR}/products.parquet"
ERRORS_PATH = f"{INDEX_DIR}/errors.parquet"
PRODUCT_SUFFIXES = (".asdf", CATALOG_SUFFIX)
#: metadata read-ahead: the ASDF header and tree of one product, not its blocks
READ_BLOCK = 2**18
#: products under an ``l5/`` folder are community products (``platform_lib.data.l5``)
L5_PREFIX = "l5/"

COLUMNS = [
    "path",
    "size",
    "version",
    "level",
    "product_type",
    "program",
    "visit",
    "exposure",
    "observation_id",
    "detector",
    "optical_element",
    "start_time",
    "start_mjd",
    "exposure_time",
    "ra_center",
    "dec_center",
    "s_region",
    "cells",
    "shape",
]


@dataclass
class IndexReport:
    """What one ``build_index`` run did (printed by the CLI)."""

    total: int = 0
    read: int = 0
    unchanged: int = 0
    removed: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else float("nan")

    def __str__(self) -> str:
        lines = [
            f"{self.total} products indexed; read {self.read} new/changed files "
            f"({self.rate:.1f} files/s), {self.unchanged} unchanged, {self.removed} removed, "
            f"{len(self.errors)} skipped"
        ]
        lines += [f"  skipped {p}: {why}" for p, why in self.errors]
        return "\n".join(lines)


def _version(info: dict) -> str:
    """Change marker of a listed file: S3 ETag, else modification time."""
    for key in ("ETag", "etag"):
        if info.get(key):
            return str(info[key]).strip('"')
    for key in ("mtime", "LastModified", "created"):
        if info.get(key) is not None:
            return str(info[key])
    return ""


def _read_many(store_spec: tuple[str, dict], items: Sequence[tuple[str, int, str]]) -> list[dict]:
    """Worker task: index rows (or error rows) for a batch of files of one store."""
    import warnings

    url, options = store_spec
    store = get_store(url, **options) if options else get_store(url)
    out = []
    for rel, size, version in items:
        try:
            kwargs = {"block_size": READ_BLOCK, "cache_type": "readahead"} if store.is_s3 else {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if is_catalog(rel):
                    row = read_catalog_metadata(store.read_bytes(rel), rel)
                else:
                    with store.fs.open(store.path(rel), "rb", **kwargs) as f:
                        row = read_product_metadata(f, rel)
            row.update(size=size, version=version)
            if rel.startswith(L5_PREFIX) or f"/{L5_PREFIX}" in rel:
                row["level"] = "L5"  # a community product (platform_lib.data.l5)
            out.append(row)
        except Exception as exc:
            out.append({"path": rel, "size": size, "version": version, "error": str(exc)[:500]})
    return out


def _store_spec(store: Store) -> tuple[str, dict]:
    if store.is_s3:
        return store.root_url, dict(store.storage_options)
    return store.root_url, {}


def _empty_table():
    import pyarrow as pa

    return pa.table({c: pa.array([], type=_TYPES()[c]) for c in COLUMNS})


def _TYPES():
    import pyarrow as pa

    return {
        "path": pa.string(),
        "size": pa.int64(),
        "version": pa.string(),
        "level": pa.string(),
        "product_type": pa.string(),
        "program": pa.int64(),
        "visit": pa.int64(),
        "exposure": pa.int64(),
        "observation_id": pa.string(),
        "detector": pa.string(),
        "optical_element": pa.string(),
        "start_time": pa.string(),
        "start_mjd": pa.float64(),
        "exposure_time": pa.float64(),
        "ra_center": pa.float64(),
        "dec_center": pa.float64(),
        "s_region": pa.string(),
        "cells": pa.list_(pa.int64()),
        "shape": pa.list_(pa.int64()),
    }


def rows_to_table(rows: Iterable[dict]):
    import pyarrow as pa

    rows = list(rows)
    types = _TYPES()
    return pa.table({c: pa.array([r.get(c) for r in rows], type=types[c]) for c in COLUMNS})


def _read_table(store: Store, relative: str, columns: Sequence[str], recover: bool):
    """One index table, or None if absent. A damaged one (cut short, not Parquet, columns
    missing) is an error naming the fix, or with ``recover`` is moved aside to ``*.damaged`` and
    treated as absent, so the next ``build_index`` rebuilds it."""
    if not store.exists(relative):
        return None
    try:
        table = arrow_table(store.read_bytes(relative))
        missing = set(columns) - set(table.column_names)
        if missing:
            raise ValueError(f"columns missing: {', '.join(sorted(missing))}")
        return table
    except DataStoreError:
        raise
    except Exception as exc:
        if not recover:
            raise DataStoreError(
                f"the product index {store.url(relative)} is damaged ({type(exc).__name__}: {exc}); "
                "run 'roman-platform data index' to rebuild it"
            ) from None
        log.warning("index: %s is damaged (%s); moved aside and rebuilt", store.url(relative), exc)
        store.write_bytes(relative + ".damaged", store.read_bytes(relative))
        store.fs.rm_file(store.path(relative))
        return None


def load_index(store: Store | str | None = None, *, recover: bool = False):
    """The store's index as a ``pyarrow.Table`` (empty if never built); see :func:`_read_table`."""
    store = get_store(store)
    table = _read_table(store, INDEX_PATH, COLUMNS, recover)
    return _empty_table() if table is None else table


def _load_errors(store: Store) -> dict[str, tuple[int, str, str]]:
    t = _read_table(store, ERRORS_PATH, ("path", "size", "version", "error"), recover=True)
    return (
        {}
        if t is None
        else {r["path"]: (r["size"], r["version"], r["error"]) for r in t.to_pylist()}
    )


def _write_parquet(store: Store, relative: str, table) -> None:
    """Readers see the old file or the new one, never half of one: one PUT on S3, and a write
    to a temporary name then ``os.replace`` (atomic on POSIX) in a folder."""
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    if store.is_s3:
        store.write_bytes(relative, buf.getvalue())
        return
    temporary = f"{relative}.{os.getpid()}.tmp"
    store.write_bytes(temporary, buf.getvalue())
    os.replace(store.path(temporary), store.path(relative))


def build_index(
    store: Store | str | None = None,
    *,
    prefix: str = "",
    client: Any = None,
    batch_size: int = 16,
    progress: bool | None = None,
) -> IndexReport:
    """Index the store incrementally (see module docstring); returns what was done.

    ``client``: a ``distributed.Client`` to use; default: one from
    ``platform_lib.compute.get_client`` (Dask-Gateway on the platform, else a LocalCluster)
    when there is more than one batch to read (one batch is read in this process).
    ``batch_size`` files are read per task.
    """
    import pyarrow as pa

    t0 = time.perf_counter()
    store = get_store(store)
    store.check()
    listing = {
        rel: info
        for rel, info in store.walk_files(prefix, PRODUCT_SUFFIXES).items()
        if not rel.startswith(INDEX_DIR + "/")
    }
    existing = load_index(store, recover=True)
    known = {
        p: (s, v)
        for p, s, v in zip(
            existing.column("path").to_pylist(),
            existing.column("size").to_pylist(),
            existing.column("version").to_pylist(),
        )
    }
    old_errors = _load_errors(store)
    report = IndexReport()
    todo: list[tuple[str, int, str]] = []
    keep_errors: dict[str, tuple[int, str, str]] = {}
    for rel, info in sorted(listing.items()):
        size, version = int(info.get("size") or 0), _version(info)
        if known.get(rel) == (size, version):
            report.unchanged += 1
            continue
        err = old_errors.get(rel)
        if err and err[:2] == (size, version):
            keep_errors[rel] = err  # same bad file as last time: still skipped, not re-read
            continue
        todo.append((rel, size, version))
    scope = prefix.strip("/") + "/"
    in_scope = [p for p in known if p.startswith(scope)] if prefix.strip("/") else list(known)
    gone = {p for p in in_scope if p not in listing}
    report.removed = len(gone)

    new_rows: list[dict] = []
    if todo:
        batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
        spec = _store_spec(store)
        results = _run_batches(spec, batches, client, progress)
        for batch, result in zip(batches, results):
            if isinstance(result, BaseException):
                for rel, size, version in batch:
                    keep_errors[rel] = (size, version, f"indexing task failed: {result}")
                continue
            for row in result:
                if "error" in row:
                    keep_errors[row["path"]] = (row["size"], row["version"], row["error"])
                    log.warning("index: skipped %s: %s", store.url(row["path"]), row["error"])
                else:
                    new_rows.append(row)
        report.read = len(todo)

    replaced = {r["path"] for r in new_rows} | gone | set(keep_errors)
    if replaced and existing.num_rows:
        mask = pa.array([p not in replaced for p in existing.column("path").to_pylist()])
        existing = existing.filter(mask)
    table = pa.concat_tables([existing.select(COLUMNS), rows_to_table(new_rows)])
    table = table.sort_by("path")
    if todo or gone or not store.exists(INDEX_PATH):
        _write_parquet(store, INDEX_PATH, table)
        errors = [
            {"path": p, "size": s, "version": v, "error": e}
            for p, (s, v, e) in sorted(keep_errors.items())
            if p in listing
        ]
        _write_parquet(
            store,
            ERRORS_PATH,
            pa.table(
                {
                    "path": pa.array([e["path"] for e in errors], pa.string()),
                    "size": pa.array([e["size"] for e in errors], pa.int64()),
                    "version": pa.array([e["version"] for e in errors], pa.string()),
                    "error": pa.array([e["error"] for e in errors], pa.string()),
                }
            ),
        )
    report.errors = [(store.url(p), e[2]) for p, e in sorted(keep_errors.items())]
    report.total = table.num_rows
    report.seconds = time.perf_counter() - t0
    return report


def _run_batches(spec, batches, client, show):
    from platform_lib.compute import get_client, progress

    if client is None and len(batches) == 1:
        # one task's worth of files: starting a cluster would cost more than the reading
        try:
            return [_read_many(spec, batches[0])]
        except Exception as exc:
            return [exc]
    if client is not None:
        futures = client.map(_read_many, [spec] * len(batches), batches, pure=False)
        return progress(client, futures, desc="indexing", show=show)
    with get_client() as c:
        futures = c.map(_read_many, [spec] * len(batches), batches, pure=False)
        return progress(c, futures, desc="indexing", show=show)
