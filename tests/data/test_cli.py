"""``roman-platform data``: sample → index → search → psf, end to end on a local folder."""

from __future__ import annotations

import pytest

from platform_lib.cli import main

pytestmark = pytest.mark.timeout(600)


def test_data_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["data", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for action in ("index", "search", "sample", "psf"):
        assert action in out


@pytest.mark.slow
def test_sample_search_and_psf(tmp_path, capsys):
    store = tmp_path / "store"
    store.mkdir()
    code = main(
        [
            "data",
            "sample",
            str(store),
            "--detectors",
            "WFI01",
            "--optical-elements",
            "F158",
            "F087",
            "--epochs",
            "2",
            "--size",
            "48",
            "--psf-grid",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "staged 8 products and 2 PSF library files" in out
    assert "10 products indexed" in out and "0 skipped" in out
    l2 = sorted((store / "sample" / "L2").glob("*_cal.asdf"))
    assert len(l2) == 4 and len(list((store / "sample" / "L1").glob("*_uncal.asdf"))) == 4

    import roman_datamodels as rdm

    with rdm.open(l2[0]) as m:
        ra, dec = m.meta.wcs(24, 24)
        assert m.meta.exposure.exposure_time > 0 and float(m.data.std()) > 0
    code = main(
        [
            "data",
            "search",
            "--store",
            str(store),
            "--cone",
            str(ra),
            str(dec),
            "1",
            "--level",
            "L2",
            "--optical-element",
            "F158",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "2 products" in out and "f087" not in out
    code = main(
        [
            "data",
            "search",
            "--store",
            str(store),
            "--level",
            "PSF",
            "--output",
            str(tmp_path / "psf.ecsv"),
        ]
    )
    assert code == 0 and "2 products written" in capsys.readouterr().out
    code = main(
        [
            "data",
            "psf",
            "--store",
            str(store),
            "--detectors",
            "WFI01",
            "--optical-elements",
            "F087",
            "--at",
            "100",
            "200",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "GriddedPSFModel" in out


def test_bad_input_is_refused_with_a_message(tmp_path, capsys):
    assert main(["data", "index", str(tmp_path / "nowhere")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["data", "search", "--store", str(tmp_path), "--polygon", "1", "2", "3"]) == 1
    assert "at least three" in capsys.readouterr().err
    assert main(["data", "psf", "--store", str(tmp_path), "--at", "10", "10"]) == 1
    assert "no PSF library file" in capsys.readouterr().err
