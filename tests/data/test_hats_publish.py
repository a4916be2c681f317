"""Publishing a HATS collection never shows a reader a mix of two versions.

The old writer rewrote a collection in place, file by file: a reader opening it meanwhile (a
notebook, a Dask worker) read some partitions of the old version and some of the new. Here every
row of version k carries ``version == k``, in several partitions, and readers open the
collection while it is republished: with ``platform_lib.data.hats.open_catalog`` and with plain
``lsdb.open_catalog``, on a local folder and on the real S3 server (SeaweedFS). Then: a publish
that fails half-way, two publishers at once, the grace period before old versions go, a dead
publisher's leftovers, and a collection written before versions (read as it is, migrated by
the next publish).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(300)

FIELDS = 8  # far-apart fields: one partition each
PER_FIELD = 30


def _table(version: int):
    from astropy.table import Table

    n = FIELDS * PER_FIELD
    k = np.arange(n)
    return Table(
        {
            "id": k,
            "ra": (k // PER_FIELD) * (360.0 / FIELDS) + 5.0 + (k % PER_FIELD) * 1e-4,
            "dec": np.where((k // PER_FIELD) % 2 == 0, 20.0, -20.0),
            "version": np.full(n, version),
        }
    )


def _read(url: str, options: dict | None, plain: bool = False):
    """Open the collection (ours or plain LSDB) and read every row, in this thread."""
    import lsdb

    from platform_lib.data.hats import open_catalog

    if plain:
        from upath import UPath

        cat = lsdb.open_catalog(UPath(url, **options) if options else url)
    else:
        cat = open_catalog(url, storage_options=options)
    return cat.to_dask_dataframe().compute(scheduler="synchronous")


def _one_version(frame) -> int:
    """The single version all rows of a read belong to (AssertionError on a mix or a gap)."""
    versions = set(frame["version"].tolist())
    assert len(versions) == 1, f"a read mixed versions {sorted(versions)}"
    assert sorted(frame["id"].tolist()) == list(range(FIELDS * PER_FIELD)), "rows missing"
    return versions.pop()


@pytest.fixture(params=["local", "s3"])
def target(request, tmp_path):
    """(parent URL, storage options or None, Store of the collection 'c')."""
    from platform_lib.data.store import get_store

    if request.param == "local":
        yield str(tmp_path), None, get_store(tmp_path / "c")
        return
    s3 = request.getfixturevalue("s3_store")
    opts = s3.storage_options()
    parent = f"s3://roman/hats-publish/{request.node.name.replace('[', '-').rstrip(']')}-{time.time_ns()}"
    store = get_store(
        f"{parent}/c", endpoint=s3.endpoint_url, key=opts["key"], secret=opts["secret"]
    )
    yield parent, store.storage_options, store
    store.fs.rm(store.root, recursive=True)


def test_a_reader_during_a_publish_sees_the_old_version_whole(target, monkeypatch):
    """After every single file the publisher puts, a reader opens and reads the collection:
    it sees version 1 whole until the switch, then version 2 whole. (In place, the reads after
    the first new partition saw both versions.)"""
    from platform_lib.data.hats import write_collection
    from platform_lib.data.store import Store

    parent, options, _ = target
    url = write_collection(_table(1), parent, "c", storage_options=options)
    assert len(_read(url, options)) == FIELDS * PER_FIELD
    seen: list[int] = []
    put = Store.put_file

    def put_then_read(self, local, relative):
        out = put(self, local, relative)
        seen.append(_one_version(_read(url, options)))
        return out

    monkeypatch.setattr(Store, "put_file", put_then_read)
    write_collection(_table(2), parent, "c", storage_options=options, replace=True)
    monkeypatch.undo()
    assert len(seen) > FIELDS and set(seen) == {1}  # every file of version 2 was put unseen
    assert _one_version(_read(url, options)) == 2
    assert _one_version(_read(url, options, plain=True)) == 2


def test_concurrent_readers_never_see_a_mix(target, monkeypatch):
    """A reader thread opens and reads the whole catalog again and again while a publisher
    publishes versions 1..N (each file put 20 ms late, as over a slow link): every read is one
    whole version, and the reads saw the versions advance."""
    from platform_lib.data.hats import write_collection
    from platform_lib.data.store import Store

    parent, options, _ = target
    url = write_collection(_table(0), parent, "c", storage_options=options)
    put = Store.put_file

    def slow_put(self, local, relative):
        time.sleep(0.02)
        return put(self, local, relative)

    monkeypatch.setattr(Store, "put_file", slow_put)
    done = threading.Event()
    published: list[int] = []

    def publisher() -> None:
        try:
            deadline = time.monotonic() + 20
            for k in range(1, 9):
                if time.monotonic() > deadline:
                    break
                write_collection(_table(k), parent, "c", storage_options=options, replace=True)
                published.append(k)
        finally:
            done.set()

    thread = threading.Thread(target=publisher, daemon=True)
    thread.start()
    reads: list[int] = []
    failures: list[str] = []
    stop = time.monotonic() + 30
    while not done.is_set() and time.monotonic() < stop:
        try:
            reads.append(_one_version(_read(url, options, plain=len(reads) % 2 == 1)))
        except Exception as exc:  # a mix, a gap, or a half-written file
            failures.append(f"{type(exc).__name__}: {exc}"[:300])
    thread.join(timeout=60)
    assert done.is_set() and len(published) >= 3
    assert not failures, f"{len(failures)} of {len(reads) + len(failures)} reads: {failures[:3]}"
    assert len(reads) >= 5 and len(set(reads)) >= 2, reads  # the reads overlapped publishes
    assert reads == sorted(reads)  # a reader never goes back to an older version
    assert _one_version(_read(url, options)) == published[-1]


def test_a_failed_publish_leaves_readers_on_the_old_version(target, monkeypatch):
    """An exception half-way through the files: the pointer still names version 1, readers read
    it whole, and the failing publisher took its partial folder away."""
    from platform_lib.data.hats import write_collection
    from platform_lib.data.hats_versions import POINTER, VERSIONS
    from platform_lib.data.store import Store

    parent, options, store = target
    url = write_collection(_table(1), parent, "c", storage_options=options)
    pointer = store.read_bytes(POINTER)
    before = _versions(store)
    put, calls = Store.put_file, []

    def failing_put(self, local, relative):
        calls.append(relative)
        if len(calls) == 5:
            raise OSError("simulated lost connection")
        return put(self, local, relative)

    monkeypatch.setattr(Store, "put_file", failing_put)
    with pytest.raises(OSError, match="lost connection"):
        write_collection(_table(2), parent, "c", storage_options=options)
    monkeypatch.undo()
    assert all(r.startswith(f"{VERSIONS}/") for r in calls)  # nothing written over version 1
    assert store.read_bytes(POINTER) == pointer
    assert _one_version(_read(url, options)) == 1
    assert _one_version(_read(url, options, plain=True)) == 1
    assert _versions(store) == before  # the partial folder is gone
    write_collection(_table(3), parent, "c", storage_options=options)
    assert _one_version(_read(url, options)) == 3


def _versions(store) -> set[str]:
    from platform_lib.data.hats_versions import VERSIONS

    if store.is_s3:
        store.fs.invalidate_cache(store.root)
    return {rel.split("/")[1] for rel in store.walk_files(VERSIONS)}


def test_old_versions_go_only_after_the_grace_period(tmp_path):
    """Superseded versions stay for the grace period (a lazy catalog opened on version 1 still
    reads it after two more publishes), then go; the previous version always stays."""
    from platform_lib.data.hats import open_catalog, write_collection
    from platform_lib.data.hats_versions import current_version, prune
    from platform_lib.data.store import get_store

    store = get_store(tmp_path / "c")
    url = write_collection(_table(1), str(tmp_path), "c")
    v1 = current_version(store)
    lazy = open_catalog(url)  # resolved now: reads version 1 whenever it computes
    write_collection(_table(2), str(tmp_path), "c")
    v2 = current_version(store)
    write_collection(_table(3), str(tmp_path), "c")
    v3 = current_version(store)
    assert _versions(store) == {v1, v2, v3}  # within the hour nothing went
    assert _one_version(lazy.to_dask_dataframe().compute(scheduler="synchronous")) == 1
    assert prune(store, grace_seconds=3600) == []
    later = time.time() + 2 * 3600
    assert prune(store, grace_seconds=3600, now=later) == [v1]  # v2: the previous, kept
    assert _versions(store) == {v2, v3}
    with pytest.raises(FileNotFoundError):  # what the grace period protected it from
        lazy.to_dask_dataframe().compute(scheduler="synchronous")
    assert prune(store, grace_seconds=3600, now=later + 10 * 3600) == []
    write_collection(_table(4), str(tmp_path), "c", grace_seconds=0)
    assert _versions(store) == {v3, current_version(store)}  # grace 0: the previous still kept
    assert _one_version(_read(url, None)) == 4
    with pytest.raises(ValueError, match="grace_seconds"):
        write_collection(_table(5), str(tmp_path), "c", grace_seconds=-1)


def test_a_dead_publishers_partial_folder_goes_after_the_grace_period(tmp_path):
    """A folder without the PUBLISHED marker (its publisher was killed) is removed by the next
    publish once older than the grace period; a younger one may be a concurrent publisher's
    work in progress and stays."""
    from platform_lib.data.hats import write_collection
    from platform_lib.data.hats_versions import VERSIONS, new_version_id
    from platform_lib.data.store import get_store

    store = get_store(tmp_path / "c")
    url = write_collection(_table(1), str(tmp_path), "c")
    dead = new_version_id(time.time() - 2 * 3600)
    busy = new_version_id()
    for version in (dead, busy):
        store.write_bytes(f"{VERSIONS}/{version}/c/dataset/Norder=0/Dir=0/Npix=1.parquet", b"PAR1")
    write_collection(_table(2), str(tmp_path), "c")
    left = _versions(store)
    assert dead not in left and busy in left and len(left) == 3  # + version 1 and 2
    assert _one_version(_read(url, None)) == 2


def test_an_unversioned_collection_is_read_then_migrated(target):
    """A collection written in place by the previous code (tables at its top level) opens as
    it is; the next publish puts a version under versions/ and switches readers to it; the old
    top-level tables stay for readers that opened them until the grace period has passed after
    a later publish, then go."""
    import tempfile

    import dask
    import lsdb

    from platform_lib.data.hats import open_catalog, write_collection
    from platform_lib.data.hats_versions import VERSIONS, current_version, prune

    parent, options, store = target
    legacy = lsdb.from_dataframe(_table(1).to_pandas(), catalog_name="c", margin_threshold=5.0)
    with tempfile.TemporaryDirectory() as tmp, dask.config.set(scheduler="synchronous"):
        legacy.to_hats(Path(tmp), progress_bar=False)
        for path in sorted(Path(tmp).rglob("*")):  # as the previous write_collection did
            if path.is_file():
                store.put_file(path, path.relative_to(tmp).as_posix())
    url = f"{parent}/c"
    assert current_version(store) is None
    assert _one_version(_read(url, options)) == 1
    old_reader = open_catalog(url, storage_options=options)  # reads the top-level tables
    write_collection(_table(2), parent, "c", storage_options=options)
    assert current_version(store) is not None
    assert _one_version(_read(url, options)) == 2
    assert _one_version(_read(url, options, plain=True)) == 2
    assert _one_version(old_reader.to_dask_dataframe().compute(scheduler="synchronous")) == 1
    later = time.time() + 2 * 3600
    assert prune(store, grace_seconds=3600, now=later) == []  # the old tables: the previous
    write_collection(_table(3), parent, "c", storage_options=options)
    assert "legacy" in prune(store, grace_seconds=3600, now=later)
    if store.is_s3:
        store.fs.invalidate_cache(store.root)
    tops = {rel.split("/")[0] for rel in store.walk_files()}
    assert tops == {"collection.properties", VERSIONS}
    assert len(_versions(store)) == 2 and _one_version(_read(url, options)) == 3


def test_two_concurrent_publishers_last_pointer_wins(tmp_path, monkeypatch):
    """Two publishers republish one collection at once (versions 100+k and 200+k) while a
    reader reads it: every read is one whole version, and the collection ends on the version
    whose pointer was written last (a publisher's last one)."""
    from platform_lib.data.hats import write_collection
    from platform_lib.data.hats_versions import POINTER
    from platform_lib.data.store import Store, get_store

    store = get_store(tmp_path / "c")
    url = write_collection(_table(0), str(tmp_path), "c")
    pointers: list[bytes] = []  # every pointer write, in order
    lock = threading.Lock()
    replace = Store.replace_bytes

    def recorded(self, relative, data):
        with lock:
            replace(self, relative, data)
            pointers.append(data)

    monkeypatch.setattr(Store, "replace_bytes", recorded)
    errors: list[BaseException] = []

    def publisher(base: int) -> None:
        try:
            for k in range(1, 4):
                write_collection(_table(base + k), str(tmp_path), "c")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publisher, args=(b,), daemon=True) for b in (100, 200)]
    for t in threads:
        t.start()
    reads = []
    stop = time.monotonic() + 40
    while any(t.is_alive() for t in threads) and time.monotonic() < stop:
        reads.append(_one_version(_read(url, None)))
    for t in threads:
        t.join(timeout=60)
    assert not errors and len(pointers) == 6 and len(reads) >= 3
    assert store.read_bytes(POINTER) == pointers[-1]  # the last write won
    assert _one_version(_read(url, None)) in {103, 203}
