"""The notebook image, built for real: the Roman stack installed as locked, JupyterLab serving its
API, an end-to-end simulate-and-catalog task inside the container, the platform's configuration
taken from the environment, and `pip install --user` surviving a restart through the home volume.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]

SMOKE = "/opt/smoke"


@pytest.fixture(scope="module")
def smoke_dir(dk):
    return {str(dk.repo / "images" / "notebook" / "smoke"): f"{SMOKE}:ro"}


def shared_dir(path):
    """A host folder the container's user (uid 1000) may write."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, 1000, 100)
    for parent in [path, *path.parents][1:4]:
        parent.chmod(parent.stat().st_mode | 0o005)  # traversable
    return path


def test_metadata_labels_and_user(dk, notebook_image):
    config = dk.inspect(notebook_image)["Config"]
    assert config["User"] == "1000:100"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == dk.project_version()
    assert labels["org.opencontainers.image.source"] not in ("", "unknown")
    # Issue 18: the release (environment) the image is and the pipeline it carries, read from
    # its lock at build time: the tier policy's environment with these pins.
    from hub_config.environments import environment_for_lock, lock_versions
    from hub_config.policy import load_policy

    lock = (dk.repo / "images" / "notebook" / "requirements.lock").read_text()
    env = environment_for_lock(load_policy(), lock)
    pins = lock_versions(lock)
    assert labels["org.roman-platform.environment"] == env.name
    assert labels["org.roman-platform.romancal"] == pins["romancal"] == env.versions.romancal
    assert labels["org.roman-platform.romanisim"] == pins["romanisim"]
    assert labels["org.roman-platform.roman-datamodels"] == pins["roman-datamodels"]
    assert labels["org.roman-platform.crds-context"] == env.versions.crds_context
    image_env = dict(e.split("=", 1) for e in config["Env"])
    assert image_env["ROMAN_IMAGE_ENVIRONMENT"] == env.name
    # Tagged with the release too: the image name the policy gives the environment.
    assert (
        dk.inspect(f"roman-platform/notebook:{env.name}")["Id"] == dk.inspect(notebook_image)["Id"]
    )
    # Inside, platform_lib reports the image's release and the installed pipeline.
    script = (
        "import json; from platform_lib.environment import current; e = current(); "
        "print(json.dumps([e.name, e.image, e.versions['romancal']]))"
    )
    out = dk.run_in(notebook_image, "python", "-c", script, env={"ROMAN_ENVIRONMENT": env.name})
    assert json.loads(out.stdout) == [env.name, env.name, env.versions.romancal]
    out = dk.run_in(notebook_image, "bash", "-c", "id -u; id -g; echo $HOME").stdout.split()
    assert out == ["1000", "100", "/home/jovyan"]


def test_nothing_site_specific_is_baked_in(dk, notebook_image):
    env = dict(e.split("=", 1) for e in dk.inspect(notebook_image)["Config"]["Env"])
    for name in [
        "DASK_GATEWAY__ADDRESS",
        "DASK_GATEWAY__PROXY_ADDRESS",
        "ROMAN_DATA_URL",
        "ROMAN_DATA_S3_ENDPOINT",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "CRDS_SERVER_URL",
        "ROMAN_QUOTA_URL",
        "JUPYTERHUB_API_TOKEN",
    ]:
        assert name not in env, name
    assert env["CRDS_PATH"].startswith(env["ROMAN_DATA_MOUNT"] + "/")
    assert env["STPSF_PATH"].startswith(env["ROMAN_DATA_MOUNT"] + "/")
    assert env["PYTHONUSERBASE"] == "/home/jovyan/.local"
    assert env["PATH"].split(":")[0] == "/home/jovyan/.local/bin"


def test_platform_configuration_comes_from_the_environment(dk, notebook_image):
    script = textwrap.dedent("""
        import json, os
        import crds.core.config as cc
        import dask, dask_gateway  # noqa: F401  (registers the gateway's config defaults)
        from platform_lib.compute import gateway_configured
        print(json.dumps({
            "gateway": dask.config.get("gateway.address"),
            "proxy": dask.config.get("gateway.proxy_address"),
            "auth": dask.config.get("gateway.auth.type"),
            "configured": gateway_configured(),
            "factory": dask.config.get("labextension.factory.class"),
            "crds_path": cc.get_crds_path(),
            "crds_server": cc.get_server_url("roman"),
            "crds_readonly": cc.get_cache_readonly(),
            "stpsf": os.environ["STPSF_PATH"],
            "data": os.environ.get("ROMAN_DATA_URL"),
        }))
    """)
    env = {
        "DASK_GATEWAY__ADDRESS": "http://127.0.0.1:8000/services/dask-gateway",
        "DASK_GATEWAY__PROXY_ADDRESS": "gateway://127.0.0.1:8786",
        "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
        "CRDS_SERVER_URL": "https://crds.example.invalid",
        "ROMAN_DATA_URL": "s3://roman/sample",
    }
    proc = dk.run_in(notebook_image, "python", "-c", script, env=env)
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["gateway"] == env["DASK_GATEWAY__ADDRESS"]
    assert out["proxy"] == env["DASK_GATEWAY__PROXY_ADDRESS"]
    assert out["auth"] == "jupyterhub" and out["configured"] is True
    assert out["factory"] == "GatewayCluster"
    assert out["crds_path"] == "/data/roman/crds" and out["crds_readonly"] is True
    assert out["crds_server"] == env["CRDS_SERVER_URL"]
    assert out["stpsf"] == "/data/roman/stpsf-data"
    assert out["data"] == "s3://roman/sample"
    # Without the spawner's environment there is no gateway: local clusters instead.
    bare = dk.run_in(
        notebook_image,
        "python",
        "-c",
        "from platform_lib.compute import gateway_configured as g; print(g())",
    )
    assert bare.stdout.strip().splitlines()[-1] == "False"


def test_every_locked_package_installed_and_importable(dk, notebook_image, smoke_dir):
    proc = dk.run_in(
        notebook_image,
        "python",
        f"{SMOKE}/check_packages.py",
        volumes=smoke_dir,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["failures"] == 0
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
        "jupyterhub",
    ]:
        assert name in summary["declared"], name
    assert "platform_lib.compute" in summary["imported"]
    assert summary["locked"] > 150


def test_the_tools_rrn_users_expect_load(dk, notebook_image, smoke_dir):
    """ipympl, jdaviz, jupyterlab-git, jupyter-resource-usage, jupyter-collaboration,
    nbgitpuller, pyvo, astroquery and lsdb, each used as a user first would (smoke/check_tools.py)."""
    proc = dk.run_in(
        notebook_image,
        "python",
        f"{SMOKE}/check_tools.py",
        volumes=smoke_dir,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(report["ok"]) == {
        "ipympl",
        "jdaviz",
        "server_extensions",
        "lab_extensions",
        "imports",
    }, report


def test_lab_extensions_and_singleuser(dk, notebook_image):
    out = dk.run_in(
        notebook_image,
        "bash",
        "-c",
        "python -c \"import dask.config, distributed; print('trim:', dask.config.get("
        "'distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_'))\"; "
        "jupyter labextension list 2>&1; jupyterhub-singleuser --version",
    ).stdout
    # The platform's Dask settings reach processes that never import platform_lib (Dask-Gateway
    # workers run this image): the wheel installs them into /opt/venv/etc/dask.
    assert "trim: None" in out
    assert "dask-labextension" in out and "enabled" in out
    assert "@jupyter-widgets/jupyterlab-manager" in out
    # The platform's own status-bar item (tier, allocation, renewal date), installed by the
    # project wheel's data files into the image's Jupyter prefix.
    assert "@roman-platform/account-status" in out
    assert out.strip().splitlines()[-1].startswith("6.")


def test_jupyter_lab_answers_its_api(dk, notebook_image, port):
    token = uuid.uuid4().hex
    name = f"roman-lab-{uuid.uuid4().hex[:8]}"
    dk.docker(
        "run",
        "-d",
        "--rm",
        "--name",
        name,
        "--network",
        "host",
        "-e",
        "EMAIL=tester@roman.invalid",  # what the spawner sets from the login's e-mail claim
        notebook_image,
        "jupyter",
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        "--ServerApp.port_retries=0",
    )
    try:
        auth = {"Authorization": f"token {token}"}
        status, body = dk.http_get(f"http://127.0.0.1:{port}/api/status", headers=auth, timeout=120)
        assert status == 200, body
        assert "started" in json.loads(body)
        status, body = dk.http_get(f"http://127.0.0.1:{port}/api/kernelspecs", headers=auth)
        assert status == 200 and "python3" in json.loads(body)["kernelspecs"]
        status, body = dk.http_get(f"http://127.0.0.1:{port}/lab/api/extensions", headers=auth)
        names = {e["name"] for e in json.loads(body)}
        assert "dask-labextension" in names, names
        # No token, no API.
        status, _ = dk.http_get(f"http://127.0.0.1:{port}/api/contents")
        assert status == 403
        # The server's tools, over HTTP and websockets as JupyterLab uses them: memory figures,
        # a git repository committed to, nbgitpuller's workshop link, two collaborators on one
        # notebook (the check runs here, on the host, against the container's server).
        check = dk.repo / "images" / "notebook" / "smoke" / "check_tools.py"
        proc = subprocess.run(
            [sys.executable, str(check), "--server", f"http://127.0.0.1:{port}"]
            + ["--token", token, "--root", "/home/jovyan"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-5000:]
        ok = json.loads(proc.stdout.strip().splitlines()[-1])["ok"]
        assert set(ok) == {"resource_usage", "git", "nbgitpuller", "collaboration"}, ok
    finally:
        logs = dk.docker("logs", name, check=False)
        dk.docker("stop", "-t", "5", name, check=False)
    assert "Jupyter Server" in logs.stderr + logs.stdout


def test_simulate_and_catalog_inside_the_container(dk, notebook_image, smoke_dir, tmp_path):
    out_dir = shared_dir(tmp_path / "out")
    proc = dk.run_in(
        notebook_image,
        "python",
        f"{SMOKE}/simulate_and_catalog.py",
        "/out",
        "--cutouts",
        "2",
        "--size",
        "256",
        volumes={**smoke_dir, str(out_dir): "/out"},
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-5000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["ok"] and len(report["cutouts"]) == 2
    for cut in report["cutouts"]:
        assert cut["matched"] >= 0.9 * cut["injected"]
        assert abs(cut["star_flux_ratio_median"] - 1) <= 0.05
    # The products are ordinary Roman files: the host's own roman_datamodels reads them.
    import roman_datamodels.datamodels as rdd
    from astropy.table import Table

    with rdd.open(out_dir / "smoke_wfi01_cal.asdf") as model:
        assert model.data.shape == (256, 256)
        assert model.meta.instrument.detector == "WFI01"
    cat = Table.read(out_dir / "smoke_wfi02_cat.parquet")
    assert len(cat) == report["cutouts"][1]["detected"]
    assert {"x_centroid", "y_centroid", "aper_flux"} <= set(cat.colnames)


def test_platform_lib_simulate_and_catalog_inside_the_container(
    dk, notebook_image, smoke_dir, tmp_path
):
    """platform_lib.simulate -> platform_lib.catalogs, products to a data-store folder."""
    out_dir = shared_dir(tmp_path / "store")
    proc = dk.run_in(
        notebook_image,
        "python",
        f"{SMOKE}/platform_task.py",
        "/store",
        volumes={**smoke_dir, str(out_dir): "/store"},
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-5000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["recovered"] >= 0.9 * report["stars"] >= 18
    assert 0.75 <= report["kron_over_truth_median"] <= 1.0  # fraction of the PSF in a Kron aperture
    import roman_datamodels.datamodels as rdd
    from astropy.table import Table

    with rdd.open(out_dir / "smoke_wfi02_f158_cal.asdf") as model:
        assert model.data.shape == (256, 256)
    assert len(Table.read(out_dir / "smoke_wfi02_f158_cat.parquet")) == report["detected"]
    assert len(Table.read(out_dir / "smoke_wfi02_f158_cal_truth.ecsv", format="ascii.ecsv")) >= 18


def test_bad_smoke_arguments_are_refused(dk, notebook_image, smoke_dir):
    proc = dk.run_in(
        notebook_image,
        "python",
        f"{SMOKE}/simulate_and_catalog.py",
        "/tmp/x",
        "--cutouts",
        "40",
        volumes=smoke_dir,
        check=False,
    )
    assert proc.returncode == 2 and "--cutouts must be between 1 and 18" in proc.stderr
    proc = dk.run_in(
        notebook_image,
        "python",
        f"{SMOKE}/platform_task.py",
        "/tmp/x",
        "--size",
        "5000",
        volumes=smoke_dir,
        check=False,
    )
    assert proc.returncode == 2 and "--size must be between 64 and 1024" in proc.stderr


@pytest.fixture(scope="module")
def tiny_wheel(tmp_path_factory):
    """A one-module package with a console script, built on the host (no index needed)."""
    src = tmp_path_factory.mktemp("tinypkg")
    (src / "roman_tiny_probe.py").write_text("def main():\n    print('tiny says hello')\n")
    (src / "pyproject.toml").write_text(
        textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "roman-tiny-probe"
        version = "0.1"
        [project.scripts]
        roman-tiny-probe = "roman_tiny_probe:main"
        [tool.setuptools]
        py-modules = ["roman_tiny_probe"]
    """)
    )
    dist = tmp_path_factory.mktemp("tinywheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(dist),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    dist.chmod(0o755)
    for whl in dist.iterdir():
        whl.chmod(0o644)
    return dist


def test_user_installs_persist_in_the_home_volume(dk, notebook_image, tiny_wheel, tmp_path):
    home = shared_dir(tmp_path / "home")
    vols = {str(home): "/home/jovyan", str(tiny_wheel): "/wheels:ro"}
    first = dk.run_in(
        notebook_image,
        "pip",
        "install",
        "--user",
        "--no-index",
        "--find-links",
        "/wheels",
        "roman-tiny-probe",
        volumes=vols,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    # A new container (a restarted server) with the same home volume still has it.
    second = dk.run_in(
        notebook_image,
        "bash",
        "-c",
        "python -c 'import roman_tiny_probe as t; print(t.__file__)'; "
        "command -v roman-tiny-probe; roman-tiny-probe",
        volumes=vols,
    ).stdout.split("\n")
    assert second[0].startswith("/home/jovyan/.local/lib/python3.11/site-packages/")
    assert second[1] == "/home/jovyan/.local/bin/roman-tiny-probe"
    assert second[2] == "tiny says hello"
    assert (home / ".local" / "bin" / "roman-tiny-probe").exists()
    # Without the volume the image is as built: nothing leaked into it.
    clean = dk.run_in(notebook_image, "python", "-c", "import roman_tiny_probe", check=False)
    assert clean.returncode != 0
    # The shared environment stays read-only to users, and a plain `pip install` goes to the home.
    touch = dk.run_in(notebook_image, "bash", "-c", "touch /opt/venv/probe", check=False)
    assert touch.returncode != 0
    home2 = shared_dir(tmp_path / "home2")
    plain = dk.run_in(
        notebook_image,
        "pip",
        "install",
        "--no-index",
        "--find-links",
        "/wheels",
        "roman-tiny-probe",
        volumes={str(home2): "/home/jovyan", str(tiny_wheel): "/wheels:ro"},
        check=False,
    )
    assert plain.returncode == 0, plain.stderr
    assert list((home2 / ".local" / "lib").glob("python3.11/site-packages/roman_tiny_probe.py"))
