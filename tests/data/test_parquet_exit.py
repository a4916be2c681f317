"""Reading Parquet through platform_lib leaves the process able to exit cleanly.

With pyarrow 26, a Parquet read from a Python file object (``io.BytesIO``, or the handle
astropy opens when ``Table.read`` is given no format) can leave a read-ahead task on an Arrow
worker thread that aborts the interpreter at exit (status 134) after the work is done. It did so
in about two runs of three when such a read was the last thing a command did, for the product
index and the catalog readers, before they went through ``platform_lib._parquet``. Each run below
is a fresh interpreter whose last act is one read, as in a command-line tool, and must exit 0.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import astropy.units as u
import numpy as np
import pytest
from astropy.table import Table

RUNS = 5  # with the old readers, five clean exits in a row came about once in a hundred

SCRIPT = textwrap.dedent("""
    import sys
    reader, path, store = sys.argv[1:]
    if reader == "catalog":
        from platform_lib.catalogs.outputs import read_catalog
        t = read_catalog(path)
        assert t["flux"].unit == "uJy", t["flux"].unit
    elif reader == "index":
        from platform_lib.data.index import load_index
        t = load_index(store)
    else:
        from platform_lib.simulate.cli import _read_table
        t = _read_table(path)
    print(len(t))
""")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("parquet")
    rng = np.random.default_rng(3)
    table = Table(
        {
            "ra": rng.uniform(0, 1, 500),
            "dec": rng.uniform(0, 1, 500),
            "flux": rng.uniform(1, 2, 500) * u.uJy,
        }
    )
    path = base / "cat.parquet"
    table.write(path, format="parquet")
    store = base / "store"
    (store / "_index").mkdir(parents=True)
    # An index with the index's columns (a foreign Parquet file is refused as damaged).
    import pyarrow.parquet as pq

    from platform_lib.data.index import rows_to_table

    pq.write_table(
        rows_to_table({"path": f"p{i}.asdf"} for i in range(500)),
        store / "_index" / "products.parquet",
    )
    script = base / "read.py"
    script.write_text(SCRIPT)
    return script, path, store


@pytest.mark.parametrize("reader", ["catalog", "index", "simulation-input"])
def test_reading_parquet_last_then_exiting_never_aborts(files, reader):
    script, path, store = files
    codes = []
    for _ in range(RUNS):
        proc = subprocess.run(
            [sys.executable, str(script), reader, str(path), str(store)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        codes.append(proc.returncode)
        if proc.returncode != 0:
            raise AssertionError(f"exit codes {codes}:\n{proc.stderr[-2000:]}")
        assert proc.stdout.strip() == "500"
