"""Catalogs as HATS collections (hats-import on Dask, with a margin cache), queried with LSDB.

A synthetic field catalog and a Gaia-like reference catalog (every fourth source, offset by
0.1") are imported on the session's Dask cluster; the cone search is checked against a
brute-force astropy separation, the cross-match against the known pairs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(600)

N = 4000


@pytest.fixture(scope="module")
def collections(tmp_path_factory, dask_client):
    import astropy.units as u
    from astropy.table import QTable

    from platform_lib.data.hats import publish_catalog

    rng = np.random.default_rng(1)
    ra, dec = 270 + rng.uniform(-0.5, 0.5, N), 66 + rng.uniform(-0.3, 0.3, N)
    field = QTable(
        {
            "id": np.arange(N),
            "ra": ra * u.deg,
            "dec": dec * u.deg,
            "flux": rng.uniform(1, 10, N) * u.uJy,
        }
    )
    ref = QTable(
        {"ref_id": np.arange(N)[::4], "ra": (ra[::4] + 0.1 / 3600) * u.deg, "dec": dec[::4] * u.deg}
    )
    out = tmp_path_factory.mktemp("hats")
    f = publish_catalog(field, out, "field", client=dask_client, pixel_threshold=1000)
    g = publish_catalog(ref, out, "gaia", client=dask_client, pixel_threshold=1000)
    return field, f, g


def test_collection_has_catalog_and_margin_cache(collections):
    from platform_lib.data.hats import open_catalog
    from platform_lib.data.hats_versions import resolve

    _, path, _ = collections
    # the collection's pointer names its one version, a collection of its own
    assert {p.name for p in path.iterdir()} == {"versions", "collection.properties"}
    version = Path(resolve(str(path)))
    assert version.parent == path / "versions"
    assert {p.name for p in version.iterdir()} >= {"field", "field_10arcs", "collection.properties"}
    cat = open_catalog(path)
    assert cat.margin is not None and len(cat.get_healpix_pixels()) > 1  # partitioned


def test_cone_and_box_match_brute_force(collections):
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    from platform_lib.data.hats import open_catalog

    field, path, _ = collections
    cat = open_catalog(path)
    got = set(cat.cone_search(270.1, 66.05, 300).compute()["id"])
    sep = SkyCoord(field["ra"], field["dec"]).separation(SkyCoord(270.1 * u.deg, 66.05 * u.deg))
    assert got == set(np.asarray(field["id"])[sep < 300 * u.arcsec]) and len(got) > 20
    # (LSDB's polygon_search needs lsst-sphgeom, which is not installed here: a box instead)
    box = set(cat.box_search(ra=(269.9, 270.1), dec=(65.9, 66.1)).compute()["id"])
    inside = (np.abs(field["ra"].value - 270.0) < 0.1) & (np.abs(field["dec"].value - 66.0) < 0.1)
    assert box == set(np.asarray(field["id"])[inside]) and len(box) > 20


def test_crossmatch_with_a_reference_catalog(collections):
    from platform_lib.data.hats import open_catalog

    _, f, g = collections
    xm = open_catalog(f).crossmatch(open_catalog(g), radius_arcsec=1, n_neighbors=1).compute()
    true = xm[xm["id_field"] == xm["ref_id_gaia"]]
    assert len(true) == N // 4  # every reference source found its counterpart
    assert float(true["_dist_arcsec"].max()) < 0.11


def test_a_table_in_memory_becomes_a_collection_in_a_store(collections, tmp_path):
    """write_collection (LSDB's own partitioning, files put into a store) gives a collection
    LSDB opens with its margin cache and matches against the hats-import one row for row."""
    from platform_lib.data.hats import open_catalog, write_collection

    field, f, _ = collections
    small = field[:400]
    url = write_collection(small, str(tmp_path / "store"), "small")
    assert url == str(tmp_path / "store" / "small")
    cat = open_catalog(url)
    assert cat.margin is not None and cat.margin.name == "small_5arcs"
    assert sorted(cat.compute()["id"]) == list(range(400))
    xm = cat.crossmatch(
        open_catalog(f), radius_arcsec=0.3, n_neighbors=1, suffixes=("_s", "_f")
    ).compute()
    assert len(xm) == 400 and (xm["id_s"] == xm["id_f"]).all()
    assert float(xm["_dist_arcsec"].max()) < 1e-6
    for bad, words in (
        ((small["id", "dec"], "nodec"), "no 'ra' column"),
        ((small, "two words"), "letters, digits"),
        ((small[:0], "empty"), "empty table"),
    ):
        with pytest.raises(ValueError, match=words):
            write_collection(bad[0], str(tmp_path / "store"), bad[1])
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["small"]  # nothing else


def test_replace_leaves_no_stale_partition(tmp_path):
    """A collection rewritten over fewer partitions keeps no file of the old ones in what
    readers open (a light-curve store republished after a batch): a new version holds only
    the new table's partitions."""
    from astropy.table import Table

    from platform_lib.data.hats import open_catalog, write_collection

    two_fields = Table(
        {
            "id": np.arange(20),
            "ra": np.r_[np.full(10, 10.0), np.full(10, 190.0)],
            "dec": np.zeros(20),
        }
    )
    two_fields["ra"] += np.r_[np.arange(10), np.arange(10)] * 1e-4
    from platform_lib.data.hats_versions import resolve

    def partitions(url: str) -> set[Path]:  # of the version readers open
        version = Path(resolve(url))
        return {p.relative_to(version) for p in version.rglob("Npix=*.parquet")}

    url = write_collection(two_fields, str(tmp_path), "c")
    old = partitions(url)
    assert len(old) >= 2  # the two fields are far apart: separate partitions
    write_collection(two_fields[:10], str(tmp_path), "c", replace=True)
    new = partitions(url)
    assert new and new < old  # the far field's partition (and its margin's) not in it
    assert sorted(open_catalog(url).compute()["id"]) == list(range(10))
