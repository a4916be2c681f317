"""Versioned environments at spawn time (issue 18): the form, the server-side checks, and what
the server gets, with the real tier spawner classes (local processes; Kubernetes pods in
test_kube_spawner.py) and the bundled policy (2026.3 current and default, 2026.2 previous)."""

from __future__ import annotations

import asyncio
import html
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import pytest
from jupyterhub.spawner import SimpleLocalProcessSpawner

from hub_config.environments import LOCAL_ENVIRONMENTS_VAR, local_mismatch
from hub_config.policy import load_policy
from hub_config.spawner import SpawnRefused, TierLocalSpawnerMixin


class _Spawner(TierLocalSpawnerMixin, SimpleLocalProcessSpawner):
    pass


def _user(groups=("tier-research",)):
    return SimpleNamespace(
        name="ann",
        groups=[SimpleNamespace(name=g) for g in groups],
        spawners={},
        url="/user/ann/",
        id=1,
    )


def _spawner(tmp_path):
    from jupyterhub.objects import Hub

    return _Spawner(
        user=_user(),
        hub=Hub(),  # what get_env reads of the hub (its URLs)
        api_token="not-a-real-token",
        oauth_client_id="jupyterhub-user-ann",
        use_cgroups=False,
        home_dir_template=str(tmp_path / "{username}"),
    )


@pytest.fixture
def no_overlays(tmp_path, monkeypatch):
    """No local overlay of any environment: only the platform's own Python environment."""
    monkeypatch.setenv(LOCAL_ENVIRONMENTS_VAR, str(tmp_path / "no-overlays"))


@pytest.fixture
def overlay_2026_2():
    """The real overlay of the previous environment, made by `python -m hub_config.environments
    make-local --missing`, which `make setup` runs)."""
    from tests.support.environments import previous_overlay

    return previous_overlay("2026.2")


def _apply(sp, options):
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, sp.apply_tier_options(options)).result()


def test_the_bundled_current_environment_is_this_platforms():
    """The default environment pins what is installed (and what the notebook lock pins:
    tests/images/test_locks.py), so the local platform can start it."""
    env = load_policy().environment()
    assert env.versions.romancal == version("romancal")
    assert env.versions.romanisim == version("romanisim")
    assert env.versions.roman_datamodels == version("roman_datamodels")
    assert local_mismatch(env) is None


def test_form_offers_current_and_previous(tmp_path, no_overlays):
    sp = _spawner(tmp_path)
    page = sp.render_profiles_form()
    radios = re.findall(r'<input[^>]*name="environment"[^>]*>', page)
    assert [re.search(r'value="([^"]+)"', r).group(1) for r in radios] == ["2026.3", "2026.2"]
    assert "checked" in radios[0] and "disabled" not in radios[0]
    # The local platform has one Python environment: the previous one is shown, disabled, and
    # says why (the versions it pins, the ones installed).
    assert "disabled" in radios[1] and "checked" not in radios[1]
    text = html.unescape(page)
    assert "romancal 1.0.3 (installed: " + version("romancal") + ")" in text
    assert "CRDS roman_0046.pmap" in text


def test_default_environment_reaches_the_server(tmp_path, no_overlays):
    sp = _spawner(tmp_path)
    _apply(sp, {"profile": "small"})
    assert sp.user_options == {"profile": "small", "environment": "2026.3"}
    assert sp.environment["ROMAN_ENVIRONMENT"] == "2026.3" and sp.environment_name == "2026.3"
    _apply(sp, {"profile": "small", "environment": "2026.3"})
    assert sp.environment["ROMAN_ENVIRONMENT"] == "2026.3"
    # What the server process gets, read there by platform_lib.environment.
    env = {**sp.get_env(), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from platform_lib.environment import current; print(current().name)",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "2026.3"


@pytest.mark.parametrize(
    ("environment", "words"),
    [
        ("1999.1", "Environment '1999.1' is not offered (available: 2026.3, 2026.2)"),
        (["2026.3"], "is not offered"),
        ("2026.2", "Environment 2026.2 cannot start here: environment 2026.2 pins romancal 1.0.3"),
    ],
)
def test_forged_or_unavailable_environment_is_refused(tmp_path, no_overlays, environment, words):
    sp = _spawner(tmp_path)
    with pytest.raises(SpawnRefused) as exc:
        _apply(sp, {"profile": "small", "environment": environment})
    assert exc.value.status_code == 403 and words in exc.value.jupyterhub_message
    assert "ROMAN_ENVIRONMENT" not in sp.environment and sp.user_options == {}


def test_image_must_be_the_environments(tmp_path):
    sp = _spawner(tmp_path)
    policy = load_policy()
    with pytest.raises(SpawnRefused, match="it runs 'roman-platform/notebook:2026.3'"):
        _apply(sp, {"profile": "small", "image": policy.environment("2026.2").image})


def test_previous_environment_runs_from_its_overlay(tmp_path, overlay_2026_2):
    """With the overlay made, the previous environment starts locally: the server's program is
    the overlay's, first on PATH, and Python there has the previous pipeline. Choosing the
    current one again gives back the platform's own program."""
    sp = _spawner(tmp_path)
    sp.cmd = [f"{sys.prefix}/bin/jupyterhub-singleuser"]
    page = sp.render_profiles_form()
    assert 'value="2026.2">' in page  # enabled now
    _apply(sp, {"profile": "small", "environment": "2026.2"})
    assert sp.user_options["environment"] == "2026.2"
    prefix = sp.cmd[0].rsplit("/bin/", 1)[0]
    assert sp.cmd[0] == f"{prefix}/bin/jupyterhub-singleuser" and prefix != sys.prefix
    env = sp.get_env()
    assert env["PATH"].split(":")[0] == f"{prefix}/bin"
    code = (
        "import json; from platform_lib.environment import current; e = current(); "
        "print(json.dumps([e.name, e.versions['romancal'], e.versions['roman_datamodels']]))"
    )
    out = subprocess.run(
        ["python", "-c", code], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    pins = overlay_2026_2.versions
    assert out.stdout.strip() == f'["2026.2", "{pins.romancal}", "{pins.roman_datamodels}"]'
    _apply(sp, {"profile": "small", "environment": "2026.3"})
    assert sp.cmd == [f"{sys.prefix}/bin/jupyterhub-singleuser"]
    assert not sp.get_env()["PATH"].startswith(prefix)


def test_the_local_platform_says_which_environments_it_can_start(no_overlays):
    from hub_config.local.cli import _environment_lines

    (line,) = _environment_lines()
    assert line == (
        "  environments: 2026.3 (default) [this venv]; "
        "2026.2 [not here: python -m hub_config.environments make-local 2026.2]"
    )


def test_an_overlay_is_laid_out_on_the_platforms_venv(overlay_2026_2):
    """What make-local made: the platform's packages behind the overlay's (processed as a site
    dir, so editable installs count), its settings shared, its programs on the overlay's Python."""
    from hub_config.environments import local_runtime, overlay_versions

    prefix = local_runtime(overlay_2026_2).prefix
    pth = next(prefix.glob("lib/python*/site-packages/_roman_platform_base.pth")).read_text()
    assert pth.startswith("import site; site.addsitedir(") and sys.prefix in pth
    for shared in ("etc", "share"):
        assert (prefix / shared).resolve() == (Path(sys.prefix) / shared).resolve()
    for program in ("jupyterhub-singleuser", "dask", "jupyter"):
        head = (prefix / "bin" / program).read_text().splitlines()[0]
        assert head == f"#!{prefix}/bin/python", (program, head)
    assert overlay_versions(prefix) == overlay_2026_2.versions.packages()


def test_an_overlay_without_the_servers_program_is_refused_clearly(tmp_path, monkeypatch):
    """A half-made overlay (its Python has the pins, its bin lacks the server's program):
    refused with what to do, not a hub error."""
    from hub_config.environments import _site_packages

    env = load_policy().environment("2026.2")
    root = tmp_path / "envs"
    prefix = root / env.name
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python").symlink_to(sys.executable)
    site = _site_packages(prefix)
    site.mkdir(parents=True)
    for pkg, ver in env.versions.packages().items():
        (site / f"{pkg}-{ver}.dist-info").mkdir()
    monkeypatch.setenv(LOCAL_ENVIRONMENTS_VAR, str(root))
    sp = _spawner(tmp_path)
    sp.cmd = [f"{sys.prefix}/bin/jupyterhub-singleuser"]
    with pytest.raises(SpawnRefused) as exc:
        _apply(sp, {"profile": "small", "environment": "2026.2"})
    assert "has no jupyterhub-singleuser" in exc.value.jupyterhub_message
    assert "make-local 2026.2" in exc.value.jupyterhub_message
