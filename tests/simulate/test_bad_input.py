"""Bad input gets a clear error and nothing is written (API and command line)."""

from __future__ import annotations

import pytest
from astropy.table import Table

from platform_lib.cli import main
from platform_lib.simulate import (
    ExposureSpec,
    Footprint,
    SimulationInputError,
    plan_survey,
    run_survey,
    simulate_exposure,
    sources,
)


@pytest.fixture
def catalog():
    return sources([270.0, 270.001], [66.0, 66.001], [20.0, 21.0], elements=["F158", "F129"])


def _spec(**kw):
    base = dict(level=1, footprint=Footprint.cutout(32))
    base.update(kw)
    return ExposureSpec(**base)


def test_unknown_optical_element(catalog) -> None:
    with pytest.raises(SimulationInputError, match="unknown optical element 'F999'"):
        simulate_exposure(catalog, _spec(optical_element="F999"))


def test_negative_flux(catalog) -> None:
    catalog["F158"][1] = -1.0
    with pytest.raises(SimulationInputError, match="negative flux in column 'F158'"):
        simulate_exposure(catalog, _spec())


def test_missing_column(catalog) -> None:
    catalog.remove_column("half_light_radius")
    with pytest.raises(SimulationInputError, match="missing column.*half_light_radius"):
        simulate_exposure(catalog, _spec())


def test_catalog_without_element_column(catalog) -> None:
    with pytest.raises(SimulationInputError, match="missing column.*F184"):
        simulate_exposure(catalog, _spec(optical_element="F184"))


def test_unknown_ma_table(catalog) -> None:
    with pytest.raises(SimulationInputError, match="MA table 999 does not exist"):
        simulate_exposure(catalog, _spec(ma_table=999))


def test_footprint_off_detector(catalog) -> None:
    with pytest.raises(SimulationInputError, match="outside the detector"):
        simulate_exposure(catalog, _spec(footprint=Footprint(4000, 4000, 256, 256)))


def test_survey_rejects_before_running(catalog, tmp_path) -> None:
    out = tmp_path / "survey"
    with pytest.raises(SimulationInputError, match="MA table"):
        plan_survey((270, 66), ma_table=0)
    pointings = plan_survey((270, 66), optical_elements=["F184"])
    with pytest.raises(SimulationInputError, match="F184"):
        run_survey(catalog, pointings, str(out), detectors=[1], serial=True)
    with pytest.raises(SimulationInputError, match="unknown detector"):
        run_survey(catalog, plan_survey((270, 66)), str(out), detectors=[19], serial=True)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    "change, args, message",
    [
        (None, ["--element", "F999"], "unknown optical element"),
        ("negative", [], "negative flux"),
        ("drop", [], "missing column"),
        (None, ["--ma-table", "999"], "MA table 999 does not exist"),
    ],
)
def test_cli_bad_input_writes_nothing(catalog, tmp_path, capsys, change, args, message) -> None:
    if change == "negative":
        catalog["F158"][0] = -5.0
    elif change == "drop":
        catalog.remove_column("ba")
    cat_path = tmp_path / "cat.ecsv"
    catalog.write(cat_path, format="ascii.ecsv")
    out = tmp_path / "out"
    code = main(
        [
            "simulate",
            "image",
            "--catalog",
            str(cat_path),
            "--cutout",
            "32",
            "--level",
            "1",
            "--out",
            str(out),
            *args,
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not out.exists() or not any(out.iterdir())


def test_cli_missing_catalog_file(tmp_path, capsys) -> None:
    code = main(
        [
            "simulate",
            "image",
            "--catalog",
            str(tmp_path / "nope.ecsv"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "not found" in capsys.readouterr().err


def test_catalog_roundtrip_keeps_romanisim_format(catalog, tmp_path) -> None:
    path = tmp_path / "c.ecsv"
    catalog.write(path, format="ascii.ecsv")
    back = Table.read(path, format="ascii.ecsv")
    assert {"ra", "dec", "type", "n", "half_light_radius", "pa", "ba", "F158"} <= set(back.colnames)
