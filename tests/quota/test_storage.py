"""Home storage on the local platform: measured like ``du``, bounded, shown against the allocation."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest

from hub_config.quota import services as ops
from hub_config.quota.services.home_storage import HomeStorageSampler, measure_tree
from hub_config.quota.settings import load_settings
from hub_config.quota.storage.models import StorageUsage


def write(path, size: int) -> int:
    """A file of ``size`` random bytes; returns the disk space it takes (st_blocks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return os.stat(path).st_blocks * 512


def test_tree_is_measured_like_du(tmp_path):
    home = tmp_path / "home"
    expected = write(home / "a.fits", 300_000) + write(home / "deep" / "er" / "b.asdf", 50_000)
    os.link(home / "a.fits", home / "deep" / "hardlink.fits")  # the same blocks: once
    outside = tmp_path / "elsewhere"
    write(outside / "big.bin", 2_000_000)
    os.symlink(outside, home / "data-link")  # a link to a big folder is not the user's home
    os.symlink(outside / "big.bin", home / "file-link")
    size = measure_tree(str(home), deadline=time.monotonic() + 30, max_entries=1000)
    assert size.complete and size.files == 2
    assert size.bytes == expected


def test_walk_is_bounded_and_says_so(tmp_path):
    home = tmp_path / "home"
    for i in range(20):
        write(home / f"f{i:02d}", 5000)
    cut = measure_tree(str(home), deadline=time.monotonic() + 30, max_entries=5)
    assert not cut.complete and cut.files < 20
    late = measure_tree(str(home), deadline=time.monotonic() - 1, max_entries=1000)
    assert not late.complete and late.files == 0
    missing = measure_tree(str(tmp_path / "nobody"), deadline=time.monotonic() + 30, max_entries=10)
    assert missing == type(missing)(0, 0, False)


def test_homes_are_sampled_and_shown_against_the_allocation(tmp_path, sessions):
    users = tmp_path / "users"
    alice = write(users / "alice" / "notebook.ipynb", 400_000)
    write(users / "bob@lab" / "x.txt", 1000)
    write(users / "%2e%2e" / "x.txt", 1000)  # not a name the spawner makes: no user's home
    (users / "stray-file").write_text("not a folder")
    sampler = HomeStorageSampler(sessions, str(users))
    assert sorted(sampler.homes()) == ["alice", "bob@lab"]
    sampler.sample_once()
    with sessions() as s:
        rows = {r.username: r for r in s.query(StorageUsage)}
        assert set(rows) == {"alice", "bob@lab"}
        assert rows["alice"].home_bytes == alice and rows["alice"].complete

    settings = load_settings(db_url="sqlite://")
    admin = ops.Actor("root", platform_admin=True)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with sessions() as s:
        ops.user(s, "alice", create=True)
        ops.create_allocation(
            s,
            admin,
            user_name="alice",
            core_hours=10,
            home_gb=0.0002,
            period_start=now - dt.timedelta(days=1),
            period_end=now + dt.timedelta(days=30),
        )
        s.commit()
        view = ops.me(s, ops.Actor("alice"), settings)["storage"]
    assert view["home_used_gb"] == pytest.approx(alice / 1e9, abs=1e-3)
    assert view["home_allocated_gb"] == 0.0002 and view["over_allocation"] is True
    assert view["files"] == 1 and view["complete"] is True

    # Files removed: the next pass replaces the figure (a level, not a sum).
    os.remove(users / "alice" / "notebook.ipynb")
    sampler.sample_once()
    with sessions() as s:
        view = ops.me(s, ops.Actor("alice"), settings)["storage"]
        assert view["home_used_gb"] == 0 and view["over_allocation"] is False
        assert ops.me(s, ops.Actor("carol"), settings)["storage"] is None  # never measured
