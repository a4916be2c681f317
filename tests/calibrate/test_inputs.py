"""Bad input gets a clear error before any work, and nothing appears in the output folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml


@pytest.fixture(scope="module")
def small_l1(tmp_path_factory: pytest.TempPathFactory, refset_dir: Path) -> Path:
    """A valid-shaped L1 ramp (fake data, right frame): enough to reach each input check."""
    import roman_datamodels.datamodels as rdm

    m = rdm.ScienceRawModel.create_fake_data(shape=(3, 264, 264))
    m.meta.instrument.detector = "WFI01"
    m.meta.instrument.optical_element = "F158"
    m.amp33 = np.zeros((3, 4096, 128), dtype=m.amp33.dtype)
    p = tmp_path_factory.mktemp("l1") / "fake_uncal.asdf"
    m.save(p)
    return p


def _empty(d: Path) -> bool:
    return not d.exists() or not any(d.iterdir())


def test_truncated_l1_is_refused(tmp_path, refset_dir, small_l1):
    from platform_lib.calibrate import InputError, calibrate_exposure

    bad = tmp_path / "cut_uncal.asdf"
    raw = small_l1.read_bytes()
    bad.write_bytes(raw[: len(raw) // 3])
    out = tmp_path / "out"
    with pytest.raises(InputError, match="cannot read L1 file cut_uncal.asdf"):
        calibrate_exposure(bad, out, refs=refset_dir)
    assert _empty(out)


def test_wrong_array_shape_is_refused(tmp_path, refset_dir):
    import roman_datamodels.datamodels as rdm

    from platform_lib.calibrate import InputError, calibrate_exposure

    m = rdm.ScienceRawModel.create_fake_data(shape=(3, 108, 108))
    m.meta.instrument.detector = "WFI01"
    p = tmp_path / "small_uncal.asdf"
    m.save(p)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"frame shape \(108, 108\) does not match .*\(264, 264\)"):
        calibrate_exposure(p, out, refs=refset_dir)
    assert _empty(out)


def test_not_a_ramp_is_refused(tmp_path, refset_dir):
    import roman_datamodels.datamodels as rdm

    from platform_lib.calibrate import InputError, calibrate_exposure

    p = tmp_path / "image.asdf"
    rdm.ImageModel.create_fake_data(shape=(16, 16)).save(p)
    with pytest.raises(InputError, match="not an L1 ramp"):
        calibrate_exposure(p, tmp_path / "out", refs=refset_dir)


def test_missing_reference_type_is_named(tmp_path, refset_dir, small_l1):
    from platform_lib.calibrate import ReferenceSetError, calibrate_exposure

    broken = tmp_path / "refs"
    shutil.copytree(refset_dir, broken)
    man = yaml.safe_load((broken / "refset.yaml").read_text())
    del man["files"]["dark"]
    (broken / "refset.yaml").write_text(yaml.safe_dump(man))
    out = tmp_path / "out"
    with pytest.raises(ReferenceSetError, match=r"step 'dark_current' needs a 'dark' reference"):
        calibrate_exposure(small_l1, out, refs=broken)
    assert _empty(out)


def test_reference_file_listed_but_absent(tmp_path, refset_dir):
    from platform_lib.calibrate import ReferenceSetError, open_reference_set

    broken = tmp_path / "refs"
    shutil.copytree(refset_dir, broken)
    next(broken.glob("*_gain.asdf")).unlink()
    with pytest.raises(ReferenceSetError, match="gain file .* is missing"):
        open_reference_set(broken)


def test_unknown_step_in_config_is_refused(tmp_path, refset_dir, small_l1):
    from platform_lib.calibrate import ConfigError, calibrate_exposure

    cfg = tmp_path / "steps.yaml"
    cfg.write_text("steps:\n  jump_detection: {rejection_threshold: 5}\n")
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"unknown step 'jump_detection'.*rampfit"):
        calibrate_exposure(small_l1, out, refs=refset_dir, config=cfg)
    assert _empty(out)


def test_unknown_parameter_and_bad_replacement_are_refused():
    from platform_lib.calibrate import ConfigError, parse_config

    with pytest.raises(ConfigError, match=r"step 'rampfit' has no parameter\(s\) \['algoritm'\]"):
        parse_config({"steps": {"rampfit": {"algoritm": "likely"}}})
    with pytest.raises(ConfigError, match="not a romancal RomanStep subclass"):
        parse_config({"steps": {"flatfield": {"replace": "collections:OrderedDict"}}})
    with pytest.raises(ConfigError, match="cannot import replacement step"):
        parse_config({"steps": {"flatfield": {"replace": "no_such_module:Step"}}})


def test_replacement_step_is_swapped_in_and_skips_recorded():
    from romancal.flatfield import FlatFieldStep
    from romancal.pipeline import ExposurePipeline

    from platform_lib.calibrate.config import build_pipeline_class, parse_config

    class_path = "romancal.saturation:SaturationStep"
    cfg = parse_config(
        {
            "steps": {
                "flatfield": {"replace": class_path},
                "source_catalog": {"skip": True},
                "rampfit": {"algorithm": "likely"},
            }
        }
    )
    cls = build_pipeline_class(cfg)
    assert issubclass(cls, ExposurePipeline) and cls is not ExposurePipeline
    assert cls.step_defs["flatfield"].__name__ == "SaturationStep"
    assert ExposurePipeline.step_defs["flatfield"] is FlatFieldStep  # romancal untouched
    assert cfg.as_dict()["steps"]["source_catalog"] == {"skip": True}


def test_stpipe_asdf_parameter_file_is_read(tmp_path):
    import asdf

    from platform_lib.calibrate import ConfigError, parse_config

    p = tmp_path / "pars.asdf"
    asdf.AsdfFile(
        {
            "class": "romancal.pipeline.exposure_pipeline.ExposurePipeline",
            "steps": [
                {
                    "class": "romancal.ramp_fitting.ramp_fit_step.RampFitStep",
                    "name": "rampfit",
                    "parameters": {"algorithm": "likely"},
                }
            ],
        }
    ).write_to(p)
    assert parse_config(p).params == {"rampfit": {"algorithm": "likely"}}
    p2 = tmp_path / "typo.asdf"
    asdf.AsdfFile({"steps": [{"name": "rampfitt", "parameters": {}}]}).write_to(p2)
    with pytest.raises(ConfigError, match="unknown step 'rampfitt'"):
        parse_config(p2)


def test_no_crds_and_no_reference_set_fails_at_once(tmp_path, small_l1, monkeypatch):
    from platform_lib.calibrate import NoReferenceSource, calibrate_exposure

    monkeypatch.delenv("CRDS_SERVER_URL", raising=False)
    monkeypatch.delenv("CRDS_PATH", raising=False)
    with pytest.raises(
        NoReferenceSource, match="no reference-file set was given .*CRDS_SERVER_URL"
    ):
        calibrate_exposure(small_l1, tmp_path / "out")
    assert _empty(tmp_path / "out")
    from platform_lib.calibrate.references import resolve

    monkeypatch.setenv("CRDS_SERVER_URL", "https://crds.example")
    with pytest.raises(NoReferenceSource, match="CRDS_PATH not set"):
        resolve(None)
    monkeypatch.setenv("CRDS_PATH", str(tmp_path / "crds"))
    assert resolve(None).mode == "crds"


def test_cli_reports_bad_config_and_template_round_trips(tmp_path, refset_dir, small_l1, capsys):
    from platform_lib.calibrate.config import parse_config
    from platform_lib.cli import main

    cfg = tmp_path / "steps.yaml"
    cfg.write_text("steps:\n  nosuchstep: {}\n")
    rc = main(
        [
            "calibrate",
            "l2",
            str(small_l1),
            "--out",
            str(tmp_path / "out"),
            "--refs",
            str(refset_dir),
            "--config",
            str(cfg),
        ]
    )
    assert rc == 2
    assert "unknown step 'nosuchstep'" in capsys.readouterr().err
    assert main(["calibrate", "config"]) == 0
    template = yaml.safe_load(capsys.readouterr().out)
    parsed = parse_config(template)  # every default the template prints is a valid setting
    assert parsed.params["rampfit"]["algorithm"] == "likely"
