"""Index, search, open and cut out, against a local folder and a real S3 server (SeaweedFS).

Search results are checked against a brute-force footprint test that does not use the index's
polygons or cells: each product's own WCS (read from the source file) decides whether the
query region touches its pixels, by sampling its boundary densely.
"""

from __future__ import annotations

import functools
import io

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(300)


# --------------------------------------------------------------------------- brute force
@functools.cache
def _wcs_of(path):
    import roman_datamodels as rdm

    with rdm.open(path) as m:
        return m.meta.wcs, m.data.shape


def _boundary(wcs, shape, per_edge=120):
    ny, nx = shape
    t = np.linspace(0, 1, per_edge)
    xs = np.concatenate(
        [-0.5 + t * nx, np.full_like(t, nx - 0.5), nx - 0.5 - t * nx, np.full_like(t, -0.5)]
    )
    ys = np.concatenate(
        [np.full_like(t, -0.5), -0.5 + t * ny, np.full_like(t, ny - 0.5), ny - 0.5 - t * ny]
    )
    ra, dec = wcs(xs, ys, with_bounding_box=False)
    return np.asarray(ra), np.asarray(dec)


def _sep_deg(ra1, dec1, ra2, dec2):
    from astropy.coordinates import SkyCoord

    return SkyCoord(ra1, dec1, unit="deg").separation(SkyCoord(ra2, dec2, unit="deg")).deg


def brute_cone(files, ra, dec, radius, margin=0.05 / 3600):
    """(certain hits, ambiguous) for L2 products; ambiguous = within ``margin`` of the edge."""
    hits, ambiguous = set(), set()
    for rel, path in files.items():
        if "/L2/" not in rel:
            continue
        wcs, shape = _wcs_of(path)
        x, y = wcs.invert(ra, dec, with_bounding_box=False)
        inside = -0.5 <= x <= shape[1] - 0.5 and -0.5 <= y <= shape[0] - 0.5
        bra, bdec = _boundary(wcs, shape)
        d = _sep_deg(ra, dec, bra, bdec).min()
        if inside or d <= radius - margin:
            hits.add(rel)
        elif d <= radius + margin:
            ambiguous.add(rel)
    return hits, ambiguous


def brute_polygon(files, verts):
    """L2 products whose pixels touch the polygon: test in each product's pixel frame."""
    from matplotlib.path import Path as MplPath

    hits = set()
    closed = np.vstack([verts, verts[:1]])
    dense = np.concatenate([np.linspace(closed[i], closed[i + 1], 200) for i in range(len(verts))])
    for rel, path in files.items():
        if "/L2/" not in rel:
            continue
        wcs, shape = _wcs_of(path)
        px, py = wcs.invert(dense[:, 0], dense[:, 1], with_bounding_box=False)
        ny, nx = shape
        edge_inside = ((px >= -0.5) & (px <= nx - 0.5) & (py >= -0.5) & (py <= ny - 0.5)).any()
        qx, qy = wcs.invert(verts[:, 0], verts[:, 1], with_bounding_box=False)
        poly = MplPath(np.stack([qx, qy], axis=1))
        corner_inside = poly.contains_points(
            [(-0.5, -0.5), (nx - 0.5, -0.5), (nx - 0.5, ny - 0.5), (-0.5, ny - 0.5)]
        ).any()
        if edge_inside or corner_inside:
            hits.add(rel)
    return hits


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def indexed(staged, dask_client):
    from platform_lib.data.index import build_index

    store, files = staged
    good = next(p for r, p in files.items() if "/L2/" in r)
    store.write_bytes("survey/L2/truncated_cal.asdf", good.read_bytes()[:2500])
    store.write_bytes(
        "survey/L2/notes_cal.asdf", b"these are not the products you are looking for\n"
    )
    report = build_index(store, client=dask_client, batch_size=4, progress=False)
    return store, files, report


def _centres(files):
    out = []
    for rel, path in files.items():
        if "/L2/" in rel:
            wcs, shape = _wcs_of(path)
            out.append(wcs(shape[1] / 2, shape[0] / 2))
    return np.array(out)


# --------------------------------------------------------------------------- tests
def test_index_has_every_product_and_reports_bad_files(indexed):
    from platform_lib.data.index import load_index

    store, files, report = indexed
    table = load_index(store)
    assert sorted(table.column("path").to_pylist()) == sorted(files)
    assert report.read == len(files) + 2
    skipped = dict(report.errors)
    assert set(skipped) == {
        store.url("survey/L2/truncated_cal.asdf"),
        store.url("survey/L2/notes_cal.asdf"),
    }
    assert "not an ASDF file" in skipped[store.url("survey/L2/notes_cal.asdf")]
    rows = {r["path"]: r for r in table.to_pylist()}
    one = rows["survey/L2/r000070020002_wfi02_f087_cal.asdf"]
    assert (one["level"], one["detector"], one["optical_element"]) == ("L2", "WFI02", "F087")
    assert (one["program"], one["visit"], one["exposure"]) == (7, 2, 2)
    assert one["exposure_time"] > 0 and one["start_time"].startswith("2027-03-02")
    assert one["s_region"].startswith("POLYGON") and len(one["cells"]) > 0
    assert rows["survey/L1/r000070010001_wfi01_f158_uncal.asdf"]["level"] == "L1"


def test_cone_search_matches_brute_force(indexed):
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    from platform_lib.data import search

    store, files, _ = indexed
    rng = np.random.default_rng(3)
    centres = _centres(files)
    checked = nonempty = 0
    for i in range(16):
        ra, dec = centres[i % len(centres)] + rng.normal(0, 4 / 3600, 2)
        radius = rng.uniform(0.5, 6) / 3600
        got = set(
            search((SkyCoord(ra, dec, unit="deg"), radius * u.deg), level="L2", store=store)["path"]
        )
        hits, ambiguous = brute_cone(files, ra, dec, radius)
        assert hits <= got <= hits | ambiguous, (ra, dec, radius)
        checked += 1
        nonempty += bool(hits)
    assert checked == 16 and 0 < nonempty < 16  # both hits and misses were exercised
    # far away: nothing
    assert len(search((10.0, -30.0, 0.1), store=store)) == 0


def test_polygon_search_matches_brute_force(indexed):
    from platform_lib.data import search

    store, files, _ = indexed
    rng = np.random.default_rng(5)
    centres = _centres(files)
    sizes = []
    for i in range(12):
        c = centres[i % len(centres)] + rng.normal(0, 5 / 3600, 2)
        half = rng.uniform(1, 6) / 3600
        verts = c + np.array([[-half, -half / 2], [half, -half], [half / 2, half], [-half, half]])
        got = set(search(polygon=verts, level="L2", store=store)["path"])
        assert got == brute_polygon(files, verts), verts
        sizes.append(len(got))
    assert max(sizes) > 1 and min(sizes) < max(sizes)


def test_metadata_filters(indexed):
    from platform_lib.data import search

    store, files, _ = indexed
    everything = search(store=store)
    assert len(everything) == len(files)
    l1 = search(level="L1", store=store)
    assert len(l1) == len(files) // 2 and set(l1["level"]) == {"L1"}
    f087 = search(level="L2", optical_element="F087", detector=["WFI02"], store=store)
    assert len(f087) == 3 and set(f087["detector"]) == {"WFI02"}
    late = search(start="2027-03-02T12:00:00", store=store)
    assert len(late) == 8 and all(t >= "2027-03-03" for t in late["start_time"])
    window = search(start="2027-03-01T23:00:00", end="2027-03-02T01:00:00", level="L2", store=store)
    assert set(window["visit"]) == {2} and len(window) == 4


def test_open_reads_the_same_arrays(indexed):
    import roman_datamodels as rdm

    from platform_lib.data import open as open_product
    from platform_lib.data import search

    store, files, _ = indexed
    rows = search(level="L2", detector="WFI01", optical_element="F158", store=store)
    row = rows[rows["visit"] == 3][0]
    with open_product(row) as remote, rdm.open(files[row["path"]]) as local:
        assert remote.meta.instrument.detector == "WFI01"
        np.testing.assert_array_equal(np.asarray(remote.data), np.asarray(local.data))
        np.testing.assert_array_equal(np.asarray(remote.dq), np.asarray(local.dq))
    l1 = search(level="L1", detector="WFI02", store=store)[0]
    with open_product(l1) as remote, rdm.open(files[l1["path"]]) as local:
        np.testing.assert_array_equal(np.asarray(remote.data), np.asarray(local.data))


def test_store_relative_path_means_the_configured_store(staged, tmp_path, monkeypatch):
    """A path as search rows give it ("L2/x.asdf") opens from $ROMAN_DATA_URL's store, whatever
    the working folder; an existing local file still means that file."""
    import roman_datamodels as rdm

    from platform_lib.data import open as open_product

    store, files = staged
    rel = next(p for p in files if "_cal" in p)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROMAN_DATA_URL", store.root_url)
    if store.is_s3:
        opts = store.storage_options
        monkeypatch.setenv("ROMAN_DATA_S3_ENDPOINT", opts["client_kwargs"]["endpoint_url"])
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", opts["key"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", opts["secret"])
    with open_product(rel) as remote, rdm.open(files[rel]) as local:
        np.testing.assert_array_equal(np.asarray(remote.data), np.asarray(local.data))
    local_copy = tmp_path / "mine_cal.asdf"
    local_copy.write_bytes(files[rel].read_bytes())
    with open_product("mine_cal.asdf") as mine:
        assert mine.meta.instrument.detector


def test_cutout_by_sky_position(indexed):
    import roman_datamodels as rdm
    from astropy.coordinates import SkyCoord

    from platform_lib.data import cutout, search

    store, files, _ = indexed
    row = search(level="L2", detector="WFI02", optical_element="F158", store=store)[0]
    with rdm.open(files[row["path"]]) as local:
        wcs, data = local.meta.wcs, np.asarray(local.data)
        ra, dec = wcs(40.0, 25.0)
    cut = cutout(row, SkyCoord(ra, dec, unit="deg"), 11)
    assert cut.shape == (11, 11) and cut.origin == (35, 20)
    np.testing.assert_array_equal(cut.data, data[20:31, 35:46])
    # the cutout's WCS puts the position at its centre pixel
    assert np.allclose(cut.wcs.invert(ra, dec), (5.0, 5.0), atol=1e-6)
    # partly off the edge: NaN-filled to the requested size
    ra0, dec0 = wcs(1.0, 1.0)
    edge = cutout(row, SkyCoord(ra0, dec0, unit="deg"), 8)
    assert edge.shape == (8, 8) and np.isnan(edge.data[0, 0]) and np.isfinite(edge.data[-1, -1])
    # an angular size, at a position off the product (gWCS is NaN there): all NaN, right shape
    import astropy.units as u

    outside = wcs(-60.0, -60.0, with_bounding_box=False)
    off = cutout(row, SkyCoord(*outside, unit="deg"), 2.2 * u.arcsec)
    assert off.shape == (20, 20) and np.isnan(off.data).all()
    inside = cutout(row, SkyCoord(ra, dec, unit="deg"), 1.1 * u.arcsec)
    assert inside.shape == (10, 10) and np.isfinite(inside.data).all()


def test_incremental_reindex_reads_only_new_files(staged, dask_client, tmp_path):
    from platform_lib.data.index import build_index, load_index
    from platform_lib.data.store import get_store

    base, files = staged
    # a store of its own (a sibling prefix/folder), so the shared index stays as it is
    if base.is_s3:
        store = get_store(
            base.root_url + "-incremental",
            **{k: v for k, v in base.storage_options.items() if k in ("key", "secret")},
            endpoint=base.storage_options["client_kwargs"]["endpoint_url"],
        )
    else:
        store = get_store(tmp_path / "incremental")
        (tmp_path / "incremental").mkdir()
    items = sorted(files.items())
    for rel, src in items[:4]:
        store.put_file(src, rel)
    first = build_index(store, client=dask_client, progress=False)
    assert (first.read, first.total, first.unchanged) == (4, 4, 0)
    again = build_index(store, client=dask_client, progress=False)
    assert (again.read, again.unchanged, again.total) == (0, 4, 4)
    for rel, src in items[4:6]:
        store.put_file(src, rel)
    store.fs.rm(store.path(items[0][0]))
    third = build_index(store, client=dask_client, progress=False)
    assert (third.read, third.unchanged, third.removed, third.total) == (2, 3, 1, 5)
    assert sorted(load_index(store).column("path").to_pylist()) == sorted(r for r, _ in items[1:6])
    if store.is_s3:
        store.fs.rm(store.root, recursive=True)


def test_open_fetches_only_the_arrays_touched(tmp_path, monkeypatch):
    """A lazily opened product reads its tree and the touched array's block, not the others."""
    from roman_datamodels import datamodels as dm

    from platform_lib.data import open as open_product
    from platform_lib.data.store import Store, get_store

    m = dm.ImageModel.create_fake_data(shape=(300, 300))
    m.data = np.arange(300 * 300, dtype=np.float32).reshape(300, 300)
    m.save(tmp_path / "p_cal.asdf")
    size = (tmp_path / "p_cal.asdf").stat().st_size
    counted = {"bytes": 0}
    original = Store.open

    class Counting(io.RawIOBase):
        """A seekable file without fileno(): ASDF reads it as it reads an S3 file (ranges)."""

        def __init__(self, inner):
            self.inner = inner

        def readable(self):
            return True

        def seekable(self):
            return True

        def seek(self, pos, whence=0):
            return self.inner.seek(pos, whence)

        def tell(self):
            return self.inner.tell()

        def readinto(self, buffer):
            data = self.inner.read(len(buffer))
            buffer[: len(data)] = data
            counted["bytes"] += len(data)
            return len(data)

        def close(self):
            self.inner.close()
            super().close()

    def counting_open(self, relative, mode="rb", **kwargs):
        return Counting(original(self, relative, mode, **kwargs))

    monkeypatch.setattr(Store, "open", counting_open)
    with open_product("p_cal.asdf", get_store(tmp_path)) as model:
        after_open = counted["bytes"]
        assert float(model.data[299, 299]) == 300 * 300 - 1
        after_data = counted["bytes"]
        np.asarray(model.dq).sum()
        after_dq = counted["bytes"]
    assert 0 < after_open < 0.2 * size  # the tree only
    assert m.data.nbytes <= after_data - after_open <= m.data.nbytes + 4096  # then the one block
    assert after_dq > after_data  # dq had not been fetched before it was touched
