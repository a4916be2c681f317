"""L5 community products: validation, provenance, where they are written, and the index.

Publishing into a local user store and team space (the ROMAN_USER_STORE_URL /
ROMAN_TEAM_STORE_URL contract); the TAP side (who sees a published product) is in test_tap.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(300)

SCHEMA = {"id": "", "ra": "deg", "dec": "deg", "flux": "uJy"}


def _catalog():
    import astropy.units as u
    from astropy.table import QTable

    return QTable(
        {
            "id": np.arange(3),
            "ra": [270.0, 270.001, 270.002] * u.deg,
            "dec": [66.0, 66.001, 66.002] * u.deg,
            "flux": [1.0, 2.0, 3.0] * u.uJy,
        }
    )


@pytest.fixture
def spaces(tmp_path, monkeypatch):
    monkeypatch.setenv("ROMAN_USER_STORE_URL", str(tmp_path / "users" / "alice") + "/")
    monkeypatch.setenv("ROMAN_TEAM_STORE_URL", str(tmp_path / "teams") + "/")
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    monkeypatch.setenv("ROMAN_ENVIRONMENT", "2026.2")  # as the spawner sets it
    return tmp_path


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_publish_a_catalog_with_provenance_and_find_it_as_l5(spaces):
    import astropy.units as u

    from platform_lib.data import open as open_product
    from platform_lib.data import search
    from platform_lib.data.l5 import publish

    out = publish(
        _catalog(),
        "my-lenses",
        licence="CC-BY-4.0",
        schema=SCHEMA,
        inputs=["s3://roman/L4/field7_f158_cat.parquet"],
        description="lens candidates",
    )
    assert out.url.startswith(str(spaces / "users" / "alice"))
    prov = json.loads((spaces / "users/alice/l5/my-lenses.provenance.json").read_text())
    assert (prov["owner"], prov["visibility"], prov["licence"]) == ("alice", "private", "CC-BY-4.0")
    assert prov["inputs"] == ["s3://roman/L4/field7_f158_cat.parquet"]
    assert "astropy" in prov["software"] and "roman_datamodels" in prov["software"]
    # The environment (release) it was made in: the one the server runs (issue 18).
    assert prov["environment"]["name"] == "2026.2"
    assert prov["environment"]["versions"]["romancal"] == prov["software"]["romancal"]
    found = search(level="L5", store=out.store_url)
    assert list(found["path"]) == ["l5/my-lenses_cat.parquet"]
    assert abs(found["ra_center"].quantity[0] - 270.001 * u.deg) < 1 * u.arcsec
    table = open_product(found[0], store=out.store_url)
    assert table["flux"].unit == u.uJy and len(table) == 3

    team = publish(
        _catalog(), "shared", licence="CC0-1.0", schema=SCHEMA, visibility="team", team="lensing"
    )
    assert team.url.startswith(str(spaces / "teams" / "lensing" / "l5"))


def test_bad_input_is_refused_and_nothing_is_written(spaces):
    import astropy.units as u

    from platform_lib.data.l5 import L5Error, publish

    before = _files(spaces)
    no_units = _catalog()
    no_units["flux"] = np.asarray(no_units["flux"].value)
    with pytest.raises(L5Error, match="'flux' has no unit"):
        publish(no_units, "x", licence="CC-BY-4.0", schema=SCHEMA)
    wrong = _catalog()
    wrong["flux"] = wrong["flux"].value * u.mJy
    with pytest.raises(L5Error, match="'flux' has unit mJy, declared uJy"):
        publish(wrong, "x", licence="CC-BY-4.0", schema=SCHEMA)
    with pytest.raises(L5Error, match="declared schema"):
        publish(_catalog(), "x", licence="CC-BY-4.0")
    with pytest.raises(L5Error, match="undeclared \\['flux'\\]"):
        publish(
            _catalog(),
            "x",
            licence="CC-BY-4.0",
            schema={k: v for k, v in SCHEMA.items() if k != "flux"},
        )
    with pytest.raises(L5Error, match="licence"):
        publish(_catalog(), "x", licence="", schema=SCHEMA)
    with pytest.raises(L5Error, match="visibility"):
        publish(_catalog(), "x", licence="MIT", schema=SCHEMA, visibility="everyone")
    with pytest.raises(L5Error, match="not a valid Roman ASDF product"):
        publish(b"#ASDF 1.0.0\nthis is not a tree\n", "img", licence="MIT")
    with pytest.raises(L5Error, match="name"):
        publish(_catalog(), "../escape", licence="MIT", schema=SCHEMA)
    assert _files(spaces) == before  # nothing half-written


def test_an_asdf_product_is_validated_with_roman_datamodels(spaces, tmp_path):
    from astropy.time import Time

    from platform_lib.data import search
    from platform_lib.data.l5 import publish
    from platform_lib.sample import make_exposure

    _, l2 = make_exposure(
        "WFI01",
        "F158",
        270.0,
        66.0,
        Time("2027-03-01T00:00:00"),
        program=7,
        visit=1,
        exposure=1,
        size=32,
        seed=1,
    )
    out = publish(l2, "my-template", licence="CC-BY-4.0", visibility="public")
    assert out.provenance["kind"] == "ImageModel"
    rows = search(level="L5", store=out.store_url)
    assert list(rows["path"]) == ["l5/my-template.asdf"] and rows["optical_element"][0] == "F158"


def test_no_overwrite_and_removal_by_owner_only(spaces, monkeypatch):
    from platform_lib.data import search
    from platform_lib.data.l5 import L5Error, publish, remove

    out = publish(_catalog(), "mine", licence="CC-BY-4.0", schema=SCHEMA)
    original = (spaces / "users/alice/l5/mine_cat.parquet").read_bytes()
    with pytest.raises(L5Error, match="never overwritten"):
        publish(_catalog()[:1], "mine", licence="CC-BY-4.0", schema=SCHEMA)
    assert (spaces / "users/alice/l5/mine_cat.parquet").read_bytes() == original
    with pytest.raises(L5Error, match="belongs to alice"):
        remove(out, by="mallory")
    remove(out, by="alice")
    assert not (spaces / "users/alice/l5/mine_cat.parquet").exists()
    assert not (spaces / "users/alice/l5/mine.provenance.json").exists()
    assert len(search(level="L5", store=out.store_url)) == 0
