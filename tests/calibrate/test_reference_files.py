"""The generated reference-file set: complete, consistent with romanisim, usable from S3."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def test_set_holds_every_reference_the_pipeline_and_simulator_ask_for(refset_dir):
    import roman_datamodels.datamodels as rdm
    from romanisim.models import parameters as rp
    from romanisim.models.ipc import ipc_kernel

    from platform_lib.calibrate.reference_files import (
        PIPELINE_REFTYPES,
        open_reference_set,
        reference_data_mapping,
    )

    rs = open_reference_set(refset_dir, verify=True)
    assert rs.subarray and rs.shape == (264, 264)
    for reftype in PIPELINE_REFTYPES:
        if reftype == "refpix":  # full-frame only, documented
            assert not rs.has("refpix")
            continue
        path = rs.reference_file(reftype, "F158")
        with rdm.open(path) as m:  # readable by roman_datamodels, schema-valid
            assert (
                m.meta.reftype.lower() == {"photom": "photom"}.get(reftype, reftype).lower()
                or reftype == "photom"
            )
    with (
        rdm.open(rs.path("gain")) as g,
        rdm.open(rs.path("readnoise")) as r,
        rdm.open(rs.path("saturation")) as s,
        rdm.open(rs.path("dark")) as d,
    ):
        assert np.all(np.asarray(g.data) == rp.reference_data["gain"])
        assert np.all(np.asarray(r.data) == rp.reference_data["readnoise"])
        assert np.all(np.asarray(s.data) == rp.reference_data["saturation"])
        med = np.median(np.asarray(d.dark_slope)[4:-4, 4:-4])
        assert med == pytest.approx(rp.reference_data["dark"] / rp.reference_data["gain"])
    with rdm.open(rs.path("ipc")) as k:
        assert np.allclose(np.asarray(k.data), ipc_kernel, atol=1e-7)
    with rdm.open(rs.path("flat_F158")) as f:
        assert np.asarray(f.data).shape == (256, 256)
        assert 0.005 < np.std(f.data) < 0.02
    mapping = reference_data_mapping(refset_dir)
    assert set(mapping) >= {
        "dark",
        "gain",
        "readnoise",
        "saturation",
        "linearity",
        "inverselinearity",
        "distortion",
        "flat",
        "ipc",
    }
    assert all(Path(p).exists() for p in mapping.values() if p)


def test_linearity_pair_inverts_to_a_fraction_of_a_dn():
    from platform_lib.calibrate.reference_files import linearity_coefficients

    fwd, inv = linearity_coefficients(-6e-7)
    lin = np.linspace(0, 58000, 200)
    raw = np.polynomial.polynomial.polyval(lin, inv)
    back = np.polynomial.polynomial.polyval(raw, fwd)
    assert np.max(np.abs(back - lin)) < 0.5


def test_distortion_maps_pixels_to_v2v3_at_the_pixel_scale(refset_dir):
    import roman_datamodels.datamodels as rdm

    with rdm.open(Path(refset_dir) / "roman_wfi_wfi01_distortion.asdf") as m:
        t = m.coordinate_distortion_transform
        v2a, v3a = t(100.0, 100.0)
        v2b, v3b = t(101.0, 100.0)
        assert np.hypot(v2b - v2a, v3b - v3a) == pytest.approx(0.11, rel=1e-6)
        assert t.bounding_box is not None


def test_spec_rejects_bad_values():
    from pydantic import ValidationError

    from platform_lib.calibrate.reference_files import RefSetSpec

    with pytest.raises(ValidationError, match="unknown detector"):
        RefSetSpec(detector="WFI19")
    with pytest.raises(ValidationError, match="size must be between"):
        RefSetSpec(size=5000)
    with pytest.raises(ValidationError, match="unknown optical element"):
        RefSetSpec(optical_elements=("F999",))


@pytest.mark.slow
def test_set_and_products_in_s3_and_the_index(s3_store, refset_dir, field, tmp_path, monkeypatch):
    """Stage the set in S3, calibrate an L1 read from S3 into S3, and find it in the index."""
    import fsspec
    from distributed import Client

    from platform_lib.calibrate import calibrate_many, open_reference_set, stage_reference_set

    for name, value in {**s3_store.client_env(), "ROMAN_DATA_URL": "s3://roman/calibrate"}.items():
        monkeypatch.setenv(name, value)
    refs_url = stage_reference_set(refset_dir, "s3://roman/calibrate/refs/wfi01-256")
    rs = open_reference_set(refs_url, cache_dir=tmp_path / "cache", verify=True)
    assert rs.detector == "WFI01"
    fs = fsspec.filesystem("s3", **s3_store.storage_options())
    l1_url = "s3://roman/calibrate/L1/" + field.sims[1].l1_path.name
    fs.put_file(str(field.sims[1].l1_path), l1_url)
    with Client(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None
    ) as client:
        report = calibrate_many(
            [l1_url],
            "s3://roman/calibrate/L2",
            refs=refs_url,
            config={"steps": {"tweakreg": {"abs_minobj": 5}}},
            abs_refcat=field.refcat,
            client=client,
        )
    assert [r.status for r in report.results] == ["done"], report.summary()
    out = report.results[0].output
    assert fs.exists(out) and not [p for p in fs.find("roman/calibrate/L2") if ".part" in p]
    from platform_lib.data.search import search

    table = search(level="L2", store="s3://roman/calibrate")
    assert any(p.endswith(Path(out).name) for p in table["path"])
