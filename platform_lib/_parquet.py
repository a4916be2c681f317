"""Parquet to and from bytes, read so that no Python object is left in Arrow's thread pools.

pyarrow's dataset scanner, which ``pyarrow.parquet.read_table`` and astropy's Parquet reader use,
may finish its read-ahead on a worker thread after the call has returned. When the source is a
Python file object (``io.BytesIO``, an fsspec file, or the handle astropy's I/O registry opens
when ``Table.read`` gets no ``format``), that late task drops the last reference to it and has
to take the GIL. If the interpreter is finalizing by then, CPython ends the thread with
``pthread_exit``, a C++ frame turns that into ``std::terminate``, and the process aborts (exit
134) after all its work is done: 8 of 12 runs of a three-line script with pyarrow 26.0.1, and as
often for the ``roman-platform`` commands that read the product index. So astropy reads a real
path with an explicit format, which Arrow opens natively, and bytes are copied into memory that
Arrow allocated before the synchronous ``ParquetFile`` reader sees them: a buffer over a Python
``bytes`` object still needed the GIL when a worker thread dropped the last reference to it
after ``read()`` had returned (1 exit in 5 aborted so in CI under load), an Arrow buffer does not.
"""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from astropy.table import Table


def parquet_file(data: bytes) -> pq.ParquetFile:
    """A Parquet file's bytes as a ``pyarrow.parquet.ParquetFile`` over an Arrow-owned copy."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    owned = pa.allocate_buffer(len(data))
    np.frombuffer(owned, dtype=np.uint8)[:] = np.frombuffer(data, dtype=np.uint8)
    return pq.ParquetFile(pa.BufferReader(owned))


def arrow_table(data: bytes) -> pa.Table:
    """A Parquet file's bytes as a ``pyarrow.Table``."""
    return parquet_file(data).read()


def table_bytes(table: Table) -> bytes:
    """An astropy table as Parquet bytes, units and simple metadata kept.

    astropy's Parquet writer only takes a path, so the bytes go through a private temporary
    file; the destination may then be any fsspec filesystem (S3 included).
    """
    from astropy.table import Table

    t = Table(table, copy=False)
    # Parquet metadata must be YAML-able: keep simple scalars, lists and dicts only.
    t.meta = {
        k: v for k, v in table.meta.items() if isinstance(v, (str, int, float, bool, list, dict))
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.parquet")
        t.write(path, format="parquet")
        with open(path, "rb") as fh:
            return fh.read()


def astropy_table(data: bytes) -> Table:
    """Parquet bytes written by :func:`table_bytes` (or any astropy/pandas writer) as a Table,
    with the units and metadata astropy stored."""
    from astropy.table import Table

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.parquet")
        with open(path, "wb") as fh:
            fh.write(data)
        return Table.read(path, format="parquet")
