"""The command line: scene -> image -> inject, files readable by roman_datamodels."""

from __future__ import annotations

import roman_datamodels as rdm
from astropy.table import Table

from platform_lib.cli import build_parser, main


def test_help_lists_simulate_commands(capsys) -> None:
    parser = build_parser()
    try:
        parser.parse_args(["simulate", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    for word in ("scene", "image", "survey", "inject"):
        assert word in out


def test_scene_image_inject(tmp_path, capsys) -> None:
    from platform_lib.simulate import ExposureSpec, Footprint, sky_position

    # a scene around the centre of the default detector's (WFI02) 64-px cutout
    ra, dec = sky_position(ExposureSpec(footprint=Footprint.cutout(64)), 32, 32)
    cat = tmp_path / "scene.ecsv"
    assert (
        main(
            [
                "simulate",
                "scene",
                "--center",
                str(ra),
                str(dec),
                "--radius",
                "0.002",
                "--stars",
                "10",
                "--galaxies",
                "15",
                "--elements",
                "F158,F129",
                "--out",
                str(cat),
            ]
        )
        == 0
    )
    table = Table.read(cat, format="ascii.ecsv")
    assert len(table) == 25 and set(table["type"]) == {"PSF", "SER"}
    assert table["F129"].min() > 0 and len(set(table["source_id"])) == 25

    out = tmp_path / "products"
    assert (
        main(
            [
                "simulate",
                "image",
                "--catalog",
                str(cat),
                "--element",
                "F158",
                "--level",
                "2",
                "--cutout",
                "64",
                "--ideal",
                "--read-noise",
                "5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    image_path, truth_path = capsys.readouterr().out.split()[-2:]
    with rdm.open(image_path) as model:
        assert type(model).__name__ == "ImageModel" and model.data.shape == (64, 64)
    assert Table.read(truth_path, format="ascii.ecsv").meta["optical_element"] == "F158"

    assert (
        main(
            [
                "simulate",
                "image",
                "--catalog",
                str(cat),
                "--level",
                "1",
                "--cutout",
                "32",
                "--ma-table",
                "3",
                "--out",
                str(out),
                "--name",
                "raw",
            ]
        )
        == 0
    )
    l1_path = capsys.readouterr().out.split()[-2]
    with rdm.open(l1_path) as model:
        assert type(model).__name__ == "ScienceRawModel"
        assert model.data.shape == (5, 40, 40)  # MA table 3: 5 resultants; 4-px reference border

    assert (
        main(
            [
                "simulate",
                "inject",
                "--image",
                image_path,
                "--catalog",
                str(cat),
                "--out",
                str(out / "injected"),
            ]
        )
        == 0
    )
    injected = capsys.readouterr().out.split()[-2]
    with rdm.open(injected) as model:
        assert model.data.shape == (64, 64)
