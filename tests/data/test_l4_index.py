"""The platform's own L4 outputs (catalogs, segmentation maps) are indexed, found and opened.

They are written by the real writer (``platform_lib.catalogs.outputs.write_products``) into a
local store next to a roman_datamodels L2 product, then indexed and searched like any product.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(300)

RA, DEC = 270.0, 66.0


def _l4_products(root):
    from platform_lib.sample import make_l4_products

    return make_l4_products(str(root / "L4"), "field7_f158", RA, DEC)


def test_segmentation_map_and_catalog_round_trip_through_the_index(tmp_path):
    import astropy.units as u
    from astropy.time import Time

    from platform_lib.data import open as open_product
    from platform_lib.data import search
    from platform_lib.data.index import build_index, load_index
    from platform_lib.sample import make_exposure

    _l4_products(tmp_path)
    _, l2 = make_exposure(
        "WFI01",
        "F158",
        RA,
        DEC,
        Time("2027-03-01T00:00:00"),
        program=7,
        visit=1,
        exposure=1,
        size=32,
        seed=1,
    )
    (tmp_path / "L2").mkdir()
    l2.save(tmp_path / "L2" / "r0000701001001_wfi01_f158_cal.asdf")

    report = build_index(str(tmp_path), progress=False)
    assert report.errors == [], (
        report.errors
    )  # before: the segmentation map was "not a Roman product"
    rows = {r["path"]: r for r in load_index(str(tmp_path)).to_pylist()}
    segm, cat = rows["L4/field7_f158_segm.asdf"], rows["L4/field7_f158_cat.parquet"]
    assert (segm["level"], segm["product_type"], segm["optical_element"], segm["shape"]) == (
        "L4",
        "segmentation_map",
        "F158",
        [100, 100],
    )
    assert (cat["level"], cat["product_type"], cat["shape"]) == ("L4", "source_catalog", [2])
    assert abs(segm["ra_center"] - RA) < 1e-3 and abs(segm["dec_center"] - DEC) < 1e-3

    near = search((RA, DEC, 10 * u.arcsec), level="L4", store=str(tmp_path))
    assert sorted(near["path"]) == ["L4/field7_f158_cat.parquet", "L4/field7_f158_segm.asdf"]
    assert len(search((RA + 1.0, DEC, 10 * u.arcsec), level="L4", store=str(tmp_path))) == 0
    table = open_product(near[near["product_type"] == "source_catalog"][0], store=str(tmp_path))
    assert table["kron_flux"].unit == u.uJy and list(table["label"]) == [1, 2]
    with open_product("L4/field7_f158_segm.asdf", store=str(tmp_path)) as af:
        assert set(np.unique(af["roman_platform"]["segmentation"])) == {0, 1, 2}


def test_search_results_carry_units_and_time(tmp_path):
    import astropy.units as u
    from astropy.time import Time

    from platform_lib.data import search
    from platform_lib.data.index import build_index
    from platform_lib.sample import make_exposure

    _l4_products(tmp_path)
    start = Time("2027-03-01T06:00:00", scale="utc")
    _, l2 = make_exposure(
        "WFI02", "F087", RA, DEC, start, program=7, visit=1, exposure=2, size=32, seed=2
    )
    (tmp_path / "L2").mkdir()
    l2.save(tmp_path / "L2" / "x_cal.asdf")
    build_index(str(tmp_path), progress=False)
    t = search(store=str(tmp_path))
    assert t["ra_center"].unit == u.deg and t["exposure_time"].unit == u.s
    assert isinstance(t["t_min"], Time) and isinstance(t["t_max"], Time)
    l2row = t[t["level"] == "L2"][0]
    assert abs((l2row["t_min"] - start).to_value(u.s)) < 1e-3
    assert l2row["t_max"] > l2row["t_min"]
    # L4 products have no exposure time: masked, not a fake epoch
    assert bool(np.ma.getmaskarray(t[t["level"] == "L4"]["t_min"].mjd).all())
