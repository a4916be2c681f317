"""Attack 6: a folder store's paths must not lead outside its root (``..``, absolute tricks,
symlinks), for reads, writes and :meth:`Store.relative`."""

from __future__ import annotations

import os

import pytest

from platform_lib.data.store import get_store


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "store"
    (root / "L2").mkdir(parents=True)
    (root / "L2" / "a.txt").write_bytes(b"inside")
    (tmp_path / "outside.txt").write_bytes(b"secret")
    return get_store(root), tmp_path


@pytest.mark.parametrize(
    "path", ["../outside.txt", "L2/../../outside.txt", "/../outside.txt", "..", "L2/../.."]
)
def test_reads_outside_the_root_are_refused(store, path):
    s, _ = store
    with pytest.raises(ValueError, match="outside the store"):
        s.read_bytes(path)
    with pytest.raises(ValueError, match="outside the store"):
        s.open(path)
    with pytest.raises(ValueError, match="outside the store"):
        s.exists(path)


@pytest.mark.parametrize("path", ["../../x", "../x", "L2/../../x"])
def test_writes_outside_the_root_are_refused_and_write_nothing(store, path, tmp_path):
    s, base = store
    before = sorted(p for p in base.parent.rglob("x"))
    with pytest.raises(ValueError, match="outside the store"):
        s.write_bytes(path, b"pwned")
    with pytest.raises(ValueError, match="outside the store"):
        s.put_file(base / "outside.txt", path)
    assert sorted(p for p in base.parent.rglob("x")) == before


def test_relative_refuses_a_path_that_only_starts_with_the_root(store):
    s, _ = store
    with pytest.raises(ValueError, match="not inside"):
        s.relative(f"{s.root}/../x")
    with pytest.raises(ValueError, match="not inside"):
        s.relative(f"{s.root}-other/x")
    assert s.relative(f"{s.root}/L2/./a.txt") == "L2/a.txt"


def test_a_symlink_out_of_the_root_is_refused(store):
    s, base = store
    os.symlink(base / "outside.txt", os.path.join(s.root, "L2", "link.txt"))
    with pytest.raises(ValueError, match="outside the store"):
        s.read_bytes("L2/link.txt")


def test_paths_inside_still_work(store):
    s, _ = store
    assert s.read_bytes("L2/a.txt") == b"inside"
    assert s.read_bytes("L2/./sub/../a.txt") == b"inside"
    s.write_bytes("L3/new.bin", b"ok")
    assert s.read_bytes("/L3/new.bin") == b"ok"
    assert sorted(s.walk_files()) == ["L2/a.txt", "L3/new.bin"]
