"""A HATS index catalog on one column, written with hats' own classes, for LSDB's ``id_search``.

Why: a light curve asked for by ``source_id`` alone had to scan every partition of the
collection (the id says nothing of the position). An index catalog (HATS's ``dataproduct_type=
index``) maps each value of a column to the partitions (``Norder``/``Npix``) holding it, and
``lsdb.Catalog.id_search`` reads it (``hats.IndexCatalog.loc_partitions``: one pyarrow
filter on the index's ``_metadata``, pruned by row-group statistics of the sorted column) and
then opens only those partitions.

Why not hats-import's index pipeline (``hats_import.index``, 0.11.1): on this venv's Python 3.11
it refuses to start (``IndexArguments.check_versions``: "dask version must be >=2025.3.0,<2025.4.0
if using python 3.11", against dask 2026.8, in ``__post_init__`` and again in ``run``), whatever
``division_hints``/``compute_partition_size``/client is given; with that check bypassed (a
diagnostic only), its ``repartition(partition_size=...)`` computes partition memory sizes while
dask lowers the graph and the distributed scheduler never returns (20,000 rows: no result in
5 minutes), the Python 3.11 dask-expr regression the check guards against. So the index is
written here, in the format that pipeline writes and hats/LSDB read: ``hats.properties`` from
``hats.catalog.TableProperties(catalog_type="index", ...)`` (``hats_primary_table_url``,
``hats_index_column``, ``hats_index_extra_column``), one Parquet file under ``dataset/index/``
sorted by the column (``SortingColumn``, 16 KiB pages as hats-import), with ``Norder``/``Npix``
(uint8/uint64) of the primary partition and ``_healpix_29``, duplicates dropped, and the
dataset's ``_metadata``/``_common_metadata`` from ``hats.io.parquet_metadata``.

The index is built from a catalog written to a local folder (what ``write_collection`` has
before it uploads a version), so it goes into the same version as the catalog it indexes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["INDEX_DATA_PAGE_SIZE", "index_name", "write_index"]

INDEX_DATA_PAGE_SIZE = 16 * 1024  # hats-import's, small pages: a lookup reads little
ROW_GROUP_ROWS = 100_000  # row groups of the sorted column: loc_partitions prunes by their stats


def index_name(catalog: str, column: str) -> str:
    """The index catalog's folder name in a collection (hats-import's ``<catalog>_<column>``)."""
    return f"{catalog}_{column}"


def write_index(
    catalog_dir: str | Path,
    column: str,
    output_dir: str | Path,
    *,
    extra_columns: Sequence[str] = (),
    primary_url: str | None = None,
) -> int:
    """Write the index catalog of ``column`` of the HATS catalog at ``catalog_dir`` (a local
    folder) to ``output_dir``; returns its row count (distinct (value, partition, extras)).

    ``primary_url`` is the ``hats_primary_table_url`` written (default: the catalog folder's
    name, a sibling in the same collection, as LSDB writes a margin's).
    """
    import hats
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from hats.catalog import TableProperties
    from hats.catalog.healpix_dataset.healpix_dataset import HealpixDataset
    from hats.io import parquet_metadata, paths
    from hats.pixel_math.spatial_index import SPATIAL_INDEX_COLUMN

    catalog_dir, output_dir = Path(catalog_dir), Path(output_dir)
    catalog = hats.read_hats(catalog_dir)
    if not isinstance(catalog, HealpixDataset):
        raise ValueError(f"cannot index {catalog_dir}: not a HATS catalog of partitions")
    names = catalog.schema.names if catalog.schema is not None else []
    missing = [c for c in (column, *extra_columns) if c not in names]
    if missing:
        raise ValueError(f"cannot index {catalog_dir.name}: no column(s) {missing}")
    columns = [column, *extra_columns]
    if SPATIAL_INDEX_COLUMN in names:
        columns.append(SPATIAL_INDEX_COLUMN)
    parts = []
    for pixel in catalog.get_healpix_pixels():
        leaf = paths.pixel_catalog_file(catalog.catalog_base_dir, pixel)
        table = pq.read_table(str(leaf), columns=columns)
        n = table.num_rows
        table = table.append_column("Norder", pa.array(np.full(n, pixel.order, np.uint8)))
        table = table.append_column("Npix", pa.array(np.full(n, pixel.pixel, np.uint64)))
        parts.append(table)
    if not parts:
        raise ValueError(f"cannot index {catalog_dir.name}: the catalog has no partitions")
    frame = pa.concat_tables(parts).to_pandas()
    frame = frame.drop_duplicates().sort_values(
        [column, "Norder", "Npix"], kind="stable", ignore_index=True
    )
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    dataset = output_dir / "dataset" / "index"
    dataset.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        table,
        dataset / "part.0.parquet",
        row_group_size=ROW_GROUP_ROWS,
        data_page_size=INDEX_DATA_PAGE_SIZE,
        sorting_columns=pq.SortingColumn.from_ordering(table.schema, [(column, "ascending")]),
        compression="zstd",
    )
    properties = TableProperties(
        catalog_name=output_dir.name,
        catalog_type="index",
        total_rows=len(frame),
        primary_catalog=primary_url or catalog_dir.name,
        indexing_column=column,
        extra_columns=list(extra_columns) or None,
        **TableProperties.new_provenance_dict(output_dir, builder="platform_lib.data.hats_index"),
    )
    properties.to_properties_file(output_dir)
    parquet_metadata.write_parquet_metadata(output_dir, order_by_healpix=False)
    return len(frame)
