"""Catalogs as HATS collections: published with hats-import on Dask, queried with LSDB.

HATS (HEALPix-adaptive partitioned Parquet, the LSST/IRSA format) is what LSDB opens; the
platform's catalogs and light curves become HATS *collections*: the catalog plus a margin
cache (the sources within ``margin_arcsec`` of each partition's edge), so a cross-match near a
partition boundary finds its neighbours. Publishing runs hats-import's pipeline on the Dask
client given (the user's gateway cluster on the platform, a LocalCluster elsewhere,
``platform_lib.compute.get_client``); reading is lazy LSDB, whose searches and cross-matches are
Dask graphs on the same cluster.

Written under the user's own store (``ROMAN_USER_STORE_URL``) or wherever ``output`` says: a
collection is a folder of Parquet files, local or on S3 through fsspec/UPath.

A table that fits in memory (a catalog of one exposure or one field) needs no import pipeline:
:func:`write_collection` partitions it with LSDB's own writer (``lsdb.from_dataframe``) and puts
the files into a store, on S3 too, where the user's key is scoped to a prefix (tutorial 13).

Every publication (both writers) is a complete new version of the collection, switched to with one
write of its ``collection.properties``, so a reader opening it meanwhile sees the old version or
the new, never a mix; old versions go after a grace period (:mod:`.hats_versions` says how,
including collections written before versions and concurrent publishers).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .hats_versions import DEFAULT_GRACE_SECONDS, publish_version, resolve

if TYPE_CHECKING:
    from upath import UPath

__all__ = ["publish_catalog", "open_catalog", "write_collection"]


def publish_catalog(
    table: Any,
    output: str | Path,
    name: str,
    *,
    client: Any = None,
    ra_column: str = "ra",
    dec_column: str = "dec",
    margin_arcsec: float = 10.0,
    pixel_threshold: int = 1_000_000,
    lowest_order: int = 0,
    highest_order: int = 10,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
) -> Path:
    """Import an astropy Table (or Parquet file/list of files) as ``output/name`` (a collection).

    Returns the collection's path (what :func:`open_catalog` and ``lsdb.open_catalog`` open).
    Units stay in the Parquet schema metadata astropy writes. hats-import writes a new version
    under ``output/name/versions/<id>/``, switched to in one write once complete; versions
    superseded for longer than ``grace_seconds`` are then removed (:mod:`.hats_versions`).
    """
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.margin_cache.margin_cache_arguments import MarginCacheArguments
    from hats_import.pipeline import pipeline_with_client

    from platform_lib.compute import get_client

    from .store import get_store

    root = Path(output) / name
    store = get_store(root)
    inputs: list[str | Path | UPath]  # hats-import's type for its file list
    with tempfile.TemporaryDirectory(prefix="hats-import-") as tmp:
        if isinstance(table, (str, Path)):
            inputs = [str(table)]
        elif isinstance(table, list):
            inputs = [str(t) for t in table]
        else:
            from astropy.table import Table

            path = Path(tmp) / f"{name}.parquet"
            Table(table).write(path, format="parquet")
            inputs = [str(path)]
        margin = f"{name}_{int(margin_arcsec)}arcs"

        def write(prefix: str) -> None:  # the version's folder, a collection of its own
            version = root / prefix
            catalog_args = ImportArguments(
                input_file_list=inputs,
                file_reader="parquet",
                ra_column=ra_column,
                dec_column=dec_column,
                output_path=version,
                output_artifact_name=name,
                pixel_threshold=pixel_threshold,
                lowest_healpix_order=lowest_order,
                highest_healpix_order=highest_order,
                tmp_dir=Path(tmp) / "work",
                progress_bar=False,
                resume=False,
            )

            def margin_args() -> MarginCacheArguments:  # valid only once the catalog exists
                return MarginCacheArguments(
                    input_catalog_path=version / name,
                    output_path=version,
                    output_artifact_name=margin,
                    margin_threshold=margin_arcsec,
                    tmp_dir=Path(tmp) / "margin",
                    progress_bar=False,
                    resume=False,
                )

            if client is None:
                with get_client() as c:
                    pipeline_with_client(catalog_args, c)
                    pipeline_with_client(margin_args(), c)
            else:
                pipeline_with_client(catalog_args, client)
                pipeline_with_client(margin_args(), client)
            _write_collection_properties(version, name, margin)

        publish_version(store, write, grace_seconds=grace_seconds)
    return root


def _write_collection_properties(root: Path, catalog: str, margin: str) -> None:
    """The HATS collection descriptor (``collection.properties``) LSDB reads."""
    (root / "collection.properties").write_text(
        f"obs_collection={catalog}\nhats_primary_table_url={catalog}\n"
        f"all_margins={margin}\ndefault_margin={margin}\n"
    )


def write_collection(
    table: Any,
    url: str | Path,
    name: str,
    *,
    ra_column: str = "ra",
    dec_column: str = "dec",
    margin_arcsec: float = 5.0,
    storage_options: Mapping[str, Any] | None = None,
    replace: bool = False,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    index_columns: Sequence[str] = (),
) -> str:
    """A table that fits in memory as the HATS collection ``url/name`` (catalog + margin cache).

    LSDB partitions the table here (``lsdb.from_dataframe``; for inputs larger than memory use
    :func:`publish_catalog`, hats-import on a cluster) and writes it to a local folder, whose
    files then go into the store one by one (``Store.put_file``). Not LSDB's writer straight to
    S3: a key scoped to a prefix of a bucket (the user's and the team's spaces) may not HEAD the
    bucket, which s3fs's ``mkdir`` does before every folder. ``margin_arcsec`` must exceed the
    cross-match radius; below ~2\" LSDB's margin search takes seconds even for a small table.
    ``storage_options`` are the store's (endpoint, credentials) when not those of the
    environment.

    The files go into a new version folder ``url/name/versions/<id>/`` and readers are switched
    to it by one write of ``url/name/collection.properties`` once every file is in, so a reader
    opening the collection meanwhile gets the old version or the new, never a mix, and a
    re-publication with fewer partitions leaves no stale file in what readers open. Versions
    superseded for longer than ``grace_seconds`` are then removed (the previous one is always
    kept); a failure half-way leaves readers on the old version (:mod:`.hats_versions`).
    Each of ``index_columns`` gets a HATS index catalog ``<name>_<column>`` in the same version,
    listed in ``all_indexes`` of ``collection.properties`` (:mod:`.hats_index`), so
    ``Catalog.id_search(values={column: ...})`` opens only the partitions holding the value and
    a reader never meets an index of another version than the catalog's.
    ``replace`` is accepted for the callers that passed it: every write replaces the collection
    this way now. Returns the collection's URL (what :func:`open_catalog` and
    ``lsdb.open_catalog`` open).
    """
    import dask
    import lsdb
    import pandas as pd
    from astropy.table import Table

    from .store import get_store

    del replace  # every publication is a whole new version (see the docstring)
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"collection name {name!r}: letters, digits, '-' and '_' only")
    frame = table if isinstance(table, pd.DataFrame) else Table(table).to_pandas(index=False)
    for col in (ra_column, dec_column):
        if col not in frame.columns:
            raise ValueError(f"the table has no {col!r} column (ra_column=/dec_column= name them)")
    if len(frame) == 0:
        raise ValueError("an empty table is not a catalog")
    index_columns = list(dict.fromkeys(index_columns))
    absent = [c for c in index_columns if c not in frame.columns]
    if absent:
        raise ValueError(f"index_columns: the table has no column(s) {absent}")
    catalog = lsdb.from_dataframe(
        frame,
        ra_column=ra_column,
        dec_column=dec_column,
        catalog_name=name,
        margin_threshold=margin_arcsec,
    )
    store = get_store(str(url).rstrip("/") + f"/{name}", **dict(storage_options or {}))
    with tempfile.TemporaryDirectory(prefix="hats-") as tmp:
        # in this process: the folder is local to it (a cluster's workers may not see it)
        with dask.config.set(scheduler="synchronous"):
            catalog.to_hats(Path(tmp), progress_bar=False)
        if index_columns:
            _add_indexes(Path(tmp), name, index_columns)

        def write(prefix: str) -> None:
            for path in sorted(Path(tmp).rglob("*")):
                if path.is_file():
                    store.put_file(path, f"{prefix}/{path.relative_to(tmp).as_posix()}")

        publish_version(store, write, grace_seconds=grace_seconds)
    return store.root_url


def _add_indexes(root: Path, catalog: str, columns: Sequence[str]) -> None:
    """Index catalogs of ``columns`` next to ``root/catalog``, named in ``all_indexes`` of the
    collection's ``collection.properties`` (hats' ``CollectionProperties``)."""
    from hats.catalog.dataset.collection_properties import CollectionProperties

    from .hats_index import index_name, write_index

    indexes = {}
    for column in columns:
        folder = index_name(catalog, column)
        write_index(root / catalog, column, root / folder, primary_url=catalog)
        indexes[column] = folder
    properties = CollectionProperties.read_from_dir(root)
    properties.all_indexes = (properties.all_indexes or {}) | indexes
    properties.to_properties_file(root)


def open_catalog(
    path: str | Path, *, storage_options: Mapping[str, Any] | None = None, **kwargs: Any
):
    """A lazy ``lsdb.Catalog`` of a collection (with its default margin) or a plain catalog.

    An ``s3://`` URL is read with the store's endpoint and credentials (those of this server,
    which the platform gives the user's Dask workers too), so the catalog's partitions are read
    where the work runs; ``storage_options`` name another endpoint or key. A versioned
    collection's pointer is read once and its current version opened, so the lazy catalog keeps
    reading that version (kept for the grace period after it is superseded) while newer ones
    are published; an unversioned collection (written before versions) or a plain catalog opens
    as it is.
    """
    import lsdb

    if isinstance(path, str) and path.startswith(("s3://", "s3a://")):
        from upath import UPath

        from .store import get_store

        options = dict(storage_options or get_store(path).storage_options)
        return lsdb.open_catalog(UPath(resolve(path, options), **options), **kwargs)
    return lsdb.open_catalog(resolve(str(path)), **kwargs)
