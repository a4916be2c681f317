"""Bad input to the data layer: files that would hang, lie or corrupt are refused, nothing lost.

Each case is a file the platform may meet in a store it does not control: a YAML alias bomb in an
ASDF tree (hung ``data index``, ``catalog`` and ``calibrate`` at 100 % CPU before), a product cut
short inside its binary blocks and one with garbage metadata (both indexed as good products
before), and a damaged index file (broke ``data index`` and ``data search`` until ``_index/`` was
deleted by hand).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from platform_lib.data.index import INDEX_PATH, build_index, load_index, read_product_metadata
from platform_lib.data.safe_asdf import AsdfInputError, check_asdf_path
from platform_lib.data.store import DataStoreError, get_store

#: 9 levels of 9 aliases: ~400 million nodes once expanded, in ~500 bytes
BOMB = (
    b"#ASDF 1.0.0\n#ASDF_STANDARD 1.5.0\n%YAML 1.1\n%TAG ! tag:stsci.edu:asdf/\n"
    b"--- !core/asdf-1.1.0\n"
    + b"a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + b"".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n".encode() for i in range(1, 9))
    + b"roman: *a8\n...\n"
)


@pytest.fixture(scope="module")
def good(product_files: dict[str, Path]) -> Path:
    return next(p for rel, p in sorted(product_files.items()) if "/L2/" in rel)


def _cut_inside_a_block(src: Path, dest: Path) -> Path:
    data = src.read_bytes()
    first_block = data.find(b"\xd3BLK")
    dest.write_bytes(data[: first_block + 200])  # header intact, the array cut short
    return dest


def _garbage_meta(src: Path, dest: Path) -> Path:
    data = src.read_bytes()
    assert b"detector: WFI" in data
    # same length, so every block offset stays right: only the metadata is wrong
    dest.write_bytes(data.replace(b"detector: WFI", b"detector: ZZZ", 1))
    return dest


def test_alias_bomb_is_refused_fast(tmp_path):
    path = tmp_path / "bomb.asdf"
    path.write_bytes(BOMB)
    t0 = time.monotonic()
    with pytest.raises(AsdfInputError, match="alias"):
        check_asdf_path(path)
    with open(path, "rb") as f, pytest.raises(ValueError, match="alias"):
        read_product_metadata(f, "bomb.asdf")
    from platform_lib.data import open_product

    with pytest.raises(AsdfInputError, match="alias"):
        open_product(str(path))
    assert time.monotonic() - t0 < 30  # it hung for ever before; the check is linear


def test_truncated_and_garbage_products_are_not_indexed(tmp_path, good):
    folder = tmp_path / "store"
    folder.mkdir()
    shutil.copy(good, folder / "good.asdf")
    _cut_inside_a_block(good, folder / "cut.asdf")
    _garbage_meta(good, folder / "garbage.asdf")
    (folder / "bomb.asdf").write_bytes(BOMB)
    (folder / "empty.asdf").write_bytes(b"")
    report = build_index(str(folder))
    assert report.total == 1
    assert load_index(str(folder)).column("path").to_pylist() == ["good.asdf"]
    why = {Path(p).name: e for p, e in report.errors}
    assert set(why) == {"cut.asdf", "garbage.asdf", "bomb.asdf", "empty.asdf"}
    assert "truncated" in why["cut.asdf"] and "block" in why["cut.asdf"]
    assert "detector" in why["garbage.asdf"] and "ZZZ" in why["garbage.asdf"]
    assert "alias" in why["bomb.asdf"]


def test_damaged_index_is_named_then_rebuilt(tmp_path, good):
    folder = tmp_path / "store"
    folder.mkdir()
    shutil.copy(good, folder / "good.asdf")
    build_index(str(folder))
    index = folder / INDEX_PATH
    index.write_bytes(index.read_bytes()[:50])  # a crash mid-write with the old writer
    with pytest.raises(DataStoreError, match="damaged.*rebuild"):
        load_index(str(folder))
    from platform_lib.data import search

    with pytest.raises(DataStoreError, match="damaged"):
        search(store=str(folder))
    report = build_index(str(folder))
    assert report.total == 1 and report.read == 1
    assert load_index(str(folder)).num_rows == 1
    assert (folder / (INDEX_PATH + ".damaged")).exists()


def test_index_write_is_atomic(tmp_path, good, monkeypatch):
    """A crash between writing and renaming leaves the previous index whole."""
    folder = tmp_path / "store"
    folder.mkdir()
    shutil.copy(good, folder / "a.asdf")
    build_index(str(folder))
    before = (folder / INDEX_PATH).read_bytes()
    shutil.copy(good, folder / "b.asdf")
    import platform_lib.data.index as index_module

    def crash(*_args):
        raise OSError("killed before the rename")

    monkeypatch.setattr(index_module.os, "replace", crash)
    with pytest.raises(OSError, match="killed"):
        build_index(str(folder))
    assert (folder / INDEX_PATH).read_bytes() == before
    monkeypatch.undo()
    assert load_index(str(folder)).num_rows == 1
    assert build_index(str(folder)).total == 2


def test_data_cli_errors_are_one_line(tmp_path, good, capsys, monkeypatch):
    from platform_lib.cli import main

    folder = tmp_path / "store"
    folder.mkdir()
    (folder / INDEX_PATH).parent.mkdir(parents=True)
    (folder / INDEX_PATH).write_bytes(b"PAR1 not really")
    assert main(["data", "search", "--store", str(folder)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "damaged" in err[0] and "rebuild" in err[0]

    import platform_lib.data.cli as data_cli

    def broken(_args):
        raise RuntimeError("something nobody expected\nover two lines")

    monkeypatch.setattr(data_cli, "_index", broken)
    assert main(["data", "index", str(folder)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "roman-platform data: error: RuntimeError: something nobody expected over two "
        "lines (run with --debug for the traceback)"
    ]
    with pytest.raises(RuntimeError):
        main(["--debug", "data", "index", str(folder)])


def test_s3_products_are_checked_too(s3_store, good):
    """The same checks on S3 (fsspec file objects read ahead in blocks)."""
    opts = s3_store.storage_options()
    store = get_store(
        "s3://roman/bad-input-tests",
        endpoint=s3_store.endpoint_url,
        key=opts["key"],
        secret=opts["secret"],
    )
    store.put_file(good, "good.asdf")
    store.write_bytes("bomb.asdf", BOMB)
    store.write_bytes("cut.asdf", good.read_bytes()[: good.read_bytes().find(b"\xd3BLK") + 200])
    report = build_index(store)
    assert report.total == 1
    why = sorted(e for _p, e in report.errors)
    assert len(why) == 2 and "alias" in why[0] and "truncated" in why[1]


def test_store_down_is_one_clear_error(monkeypatch):
    """SeaweedFS down (being restarted, or gone): a search names the endpoint it cannot reach in
    one DataStoreError, instead of botocore's EndpointConnectionError from deep inside s3fs."""
    import socket

    from platform_lib.data import search

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ROMAN_DATA_S3_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "any")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "any")
    monkeypatch.delenv("ROMAN_USER_STORE_URL", raising=False)
    with pytest.raises(DataStoreError, match=f"cannot reach the S3 endpoint.*127.0.0.1:{port}"):
        search(store=f"s3://survey-down-{port}/", level="L2")
