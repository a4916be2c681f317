"""The images' locks against pyproject.toml, offline (images/check_locks.py).

The committed locks must match the committed groups, and the checker must notice each way they
can drift apart: a dependency added to a group and not locked, one locked as direct but dropped
from the groups, a pin outside the declared range, a pin without hashes.
"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checker():
    spec = importlib.util.spec_from_file_location("check_locks", REPO / "images" / "check_locks.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def lock_text(image: str) -> str:
    return (REPO / "images" / image / "requirements.lock").read_text()


@pytest.mark.parametrize("image", ["hub", "notebook", "tap"])
def test_committed_locks_match_pyproject(checker, image):
    problems = checker.check_repo(REPO)[image]
    assert problems == [], "\n".join(problems) + "\nregenerate with scripts/lock.sh"


@pytest.mark.parametrize(
    "image,group", [("hub", "hub"), ("notebook", "science"), ("tap", "hub+tap")]
)
def test_every_pin_is_hashed_and_explained(checker, image, group):
    pins = checker.parse_lock(lock_text(image))
    assert len(pins) > 50, "a lock of the whole stack has well over 50 pins"
    assert all(p.hashes and all(h.startswith("sha256:") for h in p.hashes) for p in pins.values())
    assert lock_text(image).splitlines()[1].strip() == f"#    scripts/lock.sh {image}"


def test_tap_lock_is_the_hub_lock_plus_the_tap_group(checker, pyproject):
    """The TAP image is built on the hub image: its lock holds every hub package (so nothing the
    hub layer installed is removed) and what the tap group adds, nothing of the science stack."""
    hub, tap = checker.parse_lock(lock_text("hub")), checker.parse_lock(lock_text("tap"))
    assert set(hub) <= set(tap), sorted(set(hub) - set(tap))
    for name in ("psycopg", "fsspec", "s3fs", "pyarrow"):
        assert name in tap, name
    assert not {"astropy", "romancal", "dask"} & set(tap)
    same = sum(hub[n].version == tap[n].version for n in hub)
    assert same >= len(hub) - 3, "the tap lock re-pins the hub's packages: run scripts/lock.sh tap"


def test_notebook_lock_pins_the_roman_stack(checker, pyproject):
    pins = checker.parse_lock(lock_text("notebook"))
    for name in [
        "romancal",
        "stcal",
        "romanisim",
        "galsim",
        "photutils",
        "stpsf",
        "roman-datamodels",
        "asdf",
        "astropy",
        "astroquery",
        "synphot",
        "dask",
        "distributed",
        "dask-gateway",
        "dask-labextension",
        "s3fs",
        "fsspec",
        "matplotlib",
        "ipywidgets",
        "jupyterlab",
        "jupyterhub",
    ]:
        assert name in pins, name
    assert "jupyterhub-kubespawner" not in pins, "the notebook image needs no hub-side packages"


def test_added_dependency_without_relock_is_caught(checker, pyproject):
    changed = tomllib.loads((REPO / "pyproject.toml").read_text())
    changed["project"]["optional-dependencies"]["science"].append("emcee>=3.1")
    problems = checker.check(changed, lock_text("notebook"), "science")
    assert any("emcee" in p and "not in the lock" in p for p in problems), problems
    # The core dependencies count for both images.
    changed["project"]["dependencies"].append("pendulum>=3")
    for image, group in [("hub", "hub"), ("notebook", "science")]:
        assert any("pendulum" in p for p in checker.check(changed, lock_text(image), group))


def test_removed_dependency_still_locked_is_caught(checker, pyproject):
    changed = tomllib.loads((REPO / "pyproject.toml").read_text())
    science = changed["project"]["optional-dependencies"]["science"]
    changed["project"]["optional-dependencies"]["science"] = [
        r for r in science if not r.startswith("mocpy")
    ]
    problems = checker.check(changed, lock_text("notebook"), "science")
    assert any("mocpy" in p and "not in" in p for p in problems), problems


def test_pin_outside_the_declared_range_is_caught(checker, pyproject):
    changed = tomllib.loads((REPO / "pyproject.toml").read_text())
    science = changed["project"]["optional-dependencies"]["science"]
    changed["project"]["optional-dependencies"]["science"] = [
        "romancal==9.9.9" if r.startswith("romancal") else r for r in science
    ]
    problems = checker.check(changed, lock_text("notebook"), "science")
    assert any("romancal" in p and "does not satisfy" in p for p in problems), problems


def test_unhashed_or_garbled_lock_is_caught(checker, pyproject):
    text = lock_text("hub")
    unhashed = "\n".join(ln for ln in text.splitlines() if "--hash=" not in ln)
    unhashed = "\n".join(ln.rstrip(" \\") for ln in unhashed.replace("\\\n", "\n").splitlines())
    assert any("no hash" in p for p in checker.check(pyproject, unhashed, "hub"))
    assert checker.check(pyproject, "jupyterhub>=6\n", "hub")[0].startswith("unreadable lock")
    assert checker.check(pyproject, "# only a comment\n", "hub") == ["the lock pins nothing"]


def test_command_line_reports_problems(checker, tmp_path, capsys):
    (tmp_path / "images" / "hub").mkdir(parents=True)
    (tmp_path / "images" / "notebook").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    (tmp_path / "images" / "hub" / "requirements.lock").write_text(lock_text("hub"))
    assert checker.main([str(tmp_path)]) == 1
    assert "images/notebook/requirements.lock is missing" in capsys.readouterr().out
    (tmp_path / "images" / "notebook" / "requirements.lock").write_text(lock_text("notebook"))
    assert checker.main([str(tmp_path)]) == 1
    assert "images/tap/requirements.lock is missing" in capsys.readouterr().out
    (tmp_path / "images" / "tap").mkdir(parents=True)
    (tmp_path / "images" / "tap" / "requirements.lock").write_text(lock_text("tap"))
    assert checker.main([str(tmp_path)]) == 0


def test_notebook_lock_is_the_policys_default_environment(tmp_path):
    """Issue 18: the image the build labels with a release must be one the tier policy offers;
    today's lock is the default (current) environment, and the build's arguments say so."""
    import subprocess
    import sys

    from hub_config.environments import build_args, environment_for_lock
    from hub_config.policy import load_policy

    policy = load_policy()
    lock = lock_text("notebook")
    assert environment_for_lock(policy, lock) == policy.environment()
    args = build_args(policy, lock)
    assert args["ROMAN_ENVIRONMENT"] == policy.environment().name
    assert args["CRDS_CONTEXT"] == policy.environment().versions.crds_context
    cmd = [sys.executable, "-m", "hub_config.environments", "build-args"]
    out = subprocess.run(
        [*cmd, str(REPO / "images/notebook/requirements.lock")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=REPO,
    )
    assert out.stdout.splitlines() == [f"{k}={v}" for k, v in args.items()]
    # A lock of a pipeline no environment carries: refused, saying what to do.
    other = tmp_path / "requirements.lock"
    other.write_text(lock.replace("romancal==", "romancal==9.9.9 \\\n    # was "))
    bad = subprocess.run([*cmd, str(other)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert bad.returncode == 1
    assert "romancal 9.9.9" in bad.stderr and "add an environment for it" in bad.stderr
