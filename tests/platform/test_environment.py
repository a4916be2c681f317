"""platform_lib.environment: which environment is running, and its record in products (issue 18).

Real packages, real files: the versions are compared with the installed distributions'
metadata, and each stamped product is written and read back with its own library."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from platform_lib import environment as envmod


@pytest.fixture
def platform_env(monkeypatch):
    monkeypatch.setenv("ROMAN_ENVIRONMENT", "2026.2")
    monkeypatch.setenv("CRDS_CONTEXT", "roman_0046.pmap")
    monkeypatch.setenv("ROMAN_IMAGE_ENVIRONMENT", "2026.2")


def test_outside_the_platform_it_is_development(monkeypatch):
    for name in ("ROMAN_ENVIRONMENT", "CRDS_CONTEXT", "ROMAN_IMAGE_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    env = envmod.current()
    assert env.name == "development" and env.is_development
    assert env.crds_context is None and env.image is None
    assert "crds_context" not in env.as_dict()


def test_reports_the_chosen_environment_and_the_installed_versions(platform_env):
    env = envmod.current()
    assert env.name == "2026.2" and env.crds_context == "roman_0046.pmap" and env.image == "2026.2"
    assert env.platform == version("roman-science-platform")
    for pkg in ("romancal", "romanisim", "roman_datamodels", "stcal", "galsim", "photutils"):
        assert env.versions[pkg] == version(pkg), pkg
    for pkg in ("asdf", "astropy"):
        assert env.versions[pkg] == version(pkg), pkg
    text = env.describe()
    assert text.startswith("environment 2026.2") and f"romancal {version('romancal')}" in text
    assert "CRDS roman_0046.pmap" in text
    # One home for versions: the calibration provenance and the CLI read the same.
    from platform_lib.calibrate.exposure import software_versions
    from platform_lib.cli import version_text

    assert software_versions() == envmod.software_versions()
    assert software_versions()["roman-science-platform"] == env.platform
    assert "environment 2026.2" in version_text().splitlines()


def test_stamp_a_table_and_read_it_back(platform_env, tmp_path):
    from astropy.table import Table

    t = Table({"flux": [1.0, 2.0]})
    assert envmod.stamp(t) is t
    t.write(tmp_path / "cat.ecsv")
    back = Table.read(tmp_path / "cat.ecsv")
    rec = envmod.recorded(back)
    assert rec["name"] == "2026.2" and rec["versions"]["romancal"] == version("romancal")
    assert rec["crds_context"] == "roman_0046.pmap"


def test_stamp_a_datamodel_and_an_asdf_file(platform_env, tmp_path):
    import asdf
    import roman_datamodels.datamodels as rdm

    model = rdm.ImageModel.create_fake_data(shape=(8, 8))
    envmod.stamp(model)
    model.save(tmp_path / "image.asdf")
    with rdm.open(tmp_path / "image.asdf") as back:
        back.validate()  # the stamped product is still a valid Roman product
        rec = envmod.recorded(back)
    assert rec["name"] == "2026.2" and rec["versions"]["roman_datamodels"] == version(
        "roman_datamodels"
    )

    af = asdf.AsdfFile({"data": [1, 2, 3]})
    envmod.stamp(af, envmod.Environment(name="2026.3", platform="0.1.0", versions={"x": "1"}))
    af.write_to(tmp_path / "plain.asdf")
    with asdf.open(tmp_path / "plain.asdf") as back:
        assert envmod.recorded(back) == {
            "name": "2026.3",
            "platform": "0.1.0",
            "versions": {"x": "1"},
        }


def test_stamp_refuses_what_it_cannot_record_into():
    with pytest.raises(TypeError, match="cannot record the environment in a list"):
        envmod.stamp([1, 2])
    assert envmod.recorded([1, 2]) is None


def test_a_chosen_environment_other_than_the_images_is_reported(monkeypatch):
    monkeypatch.setenv("ROMAN_IMAGE_ENVIRONMENT", "2026.3")
    monkeypatch.setenv("ROMAN_ENVIRONMENT", "2026.2")
    env = envmod.current()
    assert env.image_mismatch == (
        "environment 2026.2 was chosen, but this image was built as 2026.3"
    )
    assert env.describe().endswith("WARNING: " + env.image_mismatch)
    monkeypatch.setenv("ROMAN_ENVIRONMENT", "2026.3")
    assert envmod.current().image_mismatch is None
    monkeypatch.delenv("ROMAN_IMAGE_ENVIRONMENT")  # not the notebook image (a local server)
    monkeypatch.setenv("ROMAN_ENVIRONMENT", "2026.2")
    assert envmod.current().image_mismatch is None
