"""The image scripts' command lines: help that says what they do, clear refusals of bad input.
(What they build is tested in test_hub_image.py / test_notebook_image.py.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(REPO / "scripts" / script), *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "script,words",
    [
        ("build-images.sh", ["--base IMAGE", "--stop-docker", "debootstrap", "--network host"]),
        ("lock.sh", ["--generate-hashes", "--upgrade", "requirements.lock"]),
    ],
)
def test_help_describes_the_script(script, words):
    proc = run(script, "--help")
    assert proc.returncode == 0
    text = proc.stdout + proc.stderr
    for w in words:
        assert w in text, w
    assert "set -euo pipefail" not in text


@pytest.mark.parametrize(
    "script,args,code,message",
    [
        ("build-images.sh", ["--bogus"], 1, "unknown argument '--bogus'"),
        ("build-images.sh", ["--base"], 1, "--base needs an image name"),
        ("build-images.sh", ["--tag"], 1, "--tag needs a tag"),
        ("build-images.sh", ["hub", "jupyter"], 1, "unknown argument 'jupyter'"),
        ("lock.sh", ["--bogus"], 2, "unknown argument '--bogus'"),
        ("lock.sh", ["science"], 2, "unknown argument 'science'"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(script, args, code, message):
    proc = run(script, *args)
    assert proc.returncode == code
    assert message in proc.stderr


def test_a_lock_no_environment_carries_stops_the_notebook_build(tmp_path):
    """Issue 18: the notebook image is labelled with its environment; a lock whose pipeline no
    policy environment pins stops the build before any work (no engine, no base, no wheels)."""
    import os

    import yaml

    policy = yaml.safe_load((REPO / "hub_config" / "policy.yaml").read_text())
    for env in policy["environments"]:
        env["versions"]["romancal"] = "9.9.9"
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-images.sh"), "notebook"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ROMAN_POLICY_FILE": str(path), "ROMAN_IMAGE_CACHE": str(tmp_path)},
    )
    assert proc.returncode == 1, proc.stderr
    assert "no environment of the tier policy carries" in proc.stderr
    assert "is not an environment of the tier policy" in proc.stderr
    assert "dockerd" not in proc.stderr and "debootstrap" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build.lock", "policy.yaml"]
