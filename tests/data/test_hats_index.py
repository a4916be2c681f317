"""A light curve by ``source_id`` reads one partition through the HATS index catalog.

The light-curve store publishes, in every version of its ``lightcurves`` collection, a HATS
index catalog on ``source_id`` (``platform_lib.data.hats_index``); ``lightcurve(id)`` uses
LSDB's ``id_search`` with it and scans only collections without one (older stores). Here: sources
spread over the whole sky (a dozen partitions), on a local folder and on the real S3 server
(SeaweedFS); results with the index equal the scan's; the index is read as an index by hats
and LSDB, lives in the published version (and the pointer names it there); and the partitions
actually read are counted, so the test fails if the index is not used.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(300)

SOURCES = 1200
EPOCHS = 6
IDS = (0, 7, 555, SOURCES - 1)  # several sources, in different partitions
ABSENT = 10 * SOURCES


def _rows(seed: int = 3):
    from astropy.table import Table

    rng = np.random.default_rng(seed)
    ra = rng.uniform(0.0, 360.0, SOURCES)
    dec = np.degrees(np.arcsin(rng.uniform(-0.95, 0.95, SOURCES)))
    n = SOURCES * EPOCHS
    return Table(
        {
            "source_id": np.repeat(np.arange(SOURCES), EPOCHS),
            "ra": np.repeat(ra, EPOCHS),
            "dec": np.repeat(dec, EPOCHS),
            "image_id": np.tile([f"epoch{k}" for k in range(EPOCHS)], SOURCES),
            "band": np.full(n, "F158"),
            "flux_unit": np.full(n, "uJy"),
            "mjd": np.tile(60000.0 + 3.0 * np.arange(EPOCHS), SOURCES),
            "flux": rng.normal(10.0, 1.0, n),
            "flux_err": np.full(n, 0.1),
        }
    )


@pytest.fixture(scope="module", params=["local", "s3"])
def store(request, tmp_path_factory):
    """A published LightCurveStore (local folder, or SeaweedFS through the environment), one per
    module and target: publishing takes seconds. The test that republishes it runs last."""
    from platform_lib.catalogs.variability import LightCurveStore

    with pytest.MonkeyPatch.context() as mp:
        if request.param == "local":
            lcs = LightCurveStore(str(tmp_path_factory.mktemp("hats-index") / "lc"))
        else:
            s3 = request.getfixturevalue("s3_store")
            for key, value in s3.client_env().items():
                mp.setenv(key, value)
            lcs = LightCurveStore(f"s3://roman/hats-index/{time.time_ns()}")
        lcs.append_lightcurves(_rows(), "batch1")
        lcs.publish()
        yield lcs
        if request.param == "s3":
            lcs.fs.rm(lcs.root, recursive=True)


@pytest.fixture
def partitions_read(monkeypatch):
    """Paths of the light-curve catalog's leaf files LSDB reads (not margin, not index)."""
    from hats.io.file_io import file_io

    read: list[str] = []
    original = file_io.read_parquet_file_to_pandas

    def spy(path, *args, **kwargs):
        text = str(path)
        if "/lightcurves/dataset/" in text and "Npix=" in text:
            read.append(text)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(file_io, "read_parquet_file_to_pandas", spy)
    # in this process: a distributed client another test left as the default would read the
    # partitions in its workers, where the spy is not (the full suite failed so, alone it passed)
    import dask

    with dask.config.set(scheduler="synchronous"):
        yield read


def _expected(sid: int):
    rows = _rows()
    mine = rows[rows["source_id"] == sid]
    mine.sort("mjd")
    return mine


def _scan(store, sid: int):
    """The by-id answer without the index: every partition filtered (the old path)."""
    from platform_lib.catalogs.variability import _as_table

    t = _as_table(
        store.catalog("lightcurves").query(f"source_id == {sid}").compute(progress_bar=False)
    )
    t.sort("mjd")
    return t


def _same(a, b) -> None:
    assert a.colnames == b.colnames
    assert len(a) == len(b)
    for c in a.colnames:
        assert np.array_equal(np.asarray(a[c]), np.asarray(b[c])), c


def test_by_id_with_the_index_equals_the_scan(store) -> None:
    assert store.has_id_index(store.catalog("lightcurves"))
    for sid in IDS:
        lc = store.lightcurve(sid)
        _same(lc, _scan(store, sid))
        assert len(lc) == EPOCHS
        assert list(lc["image_id"]) == list(_expected(sid)["image_id"])
        assert np.array_equal(np.asarray(lc["flux"]), np.asarray(_expected(sid)["flux"]))
        assert np.all(np.diff(np.asarray(lc["mjd"])) > 0)
    assert len(store.lightcurve(np.int64(IDS[1]))) == EPOCHS  # a numpy integer is an integer
    absent = store.lightcurve(ABSENT)
    assert len(absent) == 0
    assert "flux" in absent.colnames


def test_a_non_integer_id_is_refused(store) -> None:
    from platform_lib.catalogs import CatalogInputError

    for bad in (3.0, 3.7, "3", True, None):
        with pytest.raises(CatalogInputError, match="source_id must be an integer"):
            store.lightcurve(bad)  # type: ignore[arg-type]


def test_the_index_is_in_the_published_version_and_read_as_an_index(store) -> None:
    import hats
    import lsdb
    from hats.catalog.index.index_catalog import IndexCatalog
    from upath import UPath

    from platform_lib.data.hats_versions import current_version, resolve
    from platform_lib.data.store import get_store

    collection = get_store(store.collection_url("lightcurves"), **store.storage_options)
    version = current_version(collection)
    assert version is not None
    pointer = collection.read_bytes("collection.properties").decode()
    assert f"all_indexes=source_id versions/{version}/lightcurves_source_id" in pointer
    folder = resolve(store.collection_url("lightcurves"), store.storage_options)
    assert folder.endswith(f"versions/{version}")
    opts = store.storage_options
    index = hats.read_hats(UPath(f"{folder}/lightcurves_source_id", **opts))
    assert isinstance(index, IndexCatalog)
    assert index.catalog_info.catalog_type == "index"
    assert index.catalog_info.indexing_column == "source_id"
    assert index.catalog_info.primary_catalog == "lightcurves"
    assert index.catalog_info.total_rows == SOURCES  # one row per source and partition
    # plain LSDB, through the pointer: the collection's index, of this version, used by id_search
    top = store.collection_url("lightcurves")
    cat = lsdb.open_catalog(UPath(top, **opts) if opts else top)
    assert version in str(cat.hc_collection.get_index_dir_for_field("source_id"))
    found = cat.id_search(values={"source_id": IDS[2]})
    assert len(cat.get_healpix_pixels()) >= 8
    assert len(found.get_healpix_pixels()) == 1
    assert sorted(found.compute()["mjd"]) == list(_expected(IDS[2])["mjd"])
    explicit = cat.id_search(
        values={"source_id": [IDS[0], IDS[3]]}, index_catalogs={"source_id": index}
    )
    assert sorted(set(explicit.compute()["source_id"])) == [IDS[0], IDS[3]]


def test_by_id_reads_one_partition_not_all(store, partitions_read) -> None:
    cat = store.catalog("lightcurves")
    total = len(cat.get_healpix_pixels())
    assert total >= 8
    for sid in IDS:
        partitions_read.clear()
        assert len(store.lightcurve(sid)) == EPOCHS
        assert len(set(partitions_read)) == 1, partitions_read
    partitions_read.clear()
    assert len(store.lightcurve(ABSENT)) == 0
    assert partitions_read == []  # the index says no partition holds it
    partitions_read.clear()
    _scan(store, IDS[0])  # the scan, for contrast: every partition
    assert len(set(partitions_read)) == total


def test_a_store_without_an_index_is_scanned_with_the_same_answers(store) -> None:
    """A collection published before the index (no ``all_indexes``) answers the same."""
    from platform_lib.data.hats import write_collection

    with_index = {sid: store.lightcurve(sid) for sid in (*IDS, ABSENT)}
    write_collection(  # what an older store published: no index catalog
        store.ingested(),
        store.hats_url,
        "lightcurves",
        storage_options=store.storage_options or None,
    )
    assert not store.has_id_index(store.catalog("lightcurves"))
    for sid, lc in with_index.items():
        _same(store.lightcurve(sid), lc)


@pytest.mark.parametrize("plain", [False, True])
def test_a_reader_keeps_the_index_of_its_own_version(tmp_path, plain) -> None:
    """A catalog opened before a republication searches with its own version's index: the
    new version moves every source (another sky position, so another partition), and an index
    of the new version would send the old catalog to the wrong partitions (an empty answer)."""
    import lsdb

    from platform_lib.data.hats import open_catalog, write_collection

    def opened():
        url = str(tmp_path / "lightcurves")
        return lsdb.open_catalog(url) if plain else open_catalog(url)

    old, new = _rows(seed=3), _rows(seed=4)
    write_collection(old, tmp_path, "lightcurves", index_columns=["source_id"])
    before = opened()
    write_collection(new, tmp_path, "lightcurves", index_columns=["source_id"])
    after = opened()
    for sid in IDS:
        for cat, rows in ((before, old), (after, new)):
            found = cat.id_search(values={"source_id": sid}).compute()
            mine = rows[rows["source_id"] == sid]
            assert len(found) == EPOCHS, (sid, len(found))
            assert np.allclose(found["ra"].to_numpy(), np.asarray(mine["ra"]))
            assert sorted(found["flux"]) == sorted(np.asarray(mine["flux"]))


def test_index_columns_must_be_columns(tmp_path) -> None:
    from platform_lib.data.hats import write_collection

    with pytest.raises(ValueError, match="no column"):
        write_collection(_rows(), tmp_path, "lightcurves", index_columns=["objid"])
