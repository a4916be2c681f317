"""The hub image, built for real: non-root, labelled, and able to load the hub's configuration.

The policy check runs the image's own copy of hub_config against the policy bundled in it and
against a broken one; the imports are those jupyterhub_config.py names in chart mode (KubeSpawner,
the OIDC authenticator, the PostgreSQL driver, the quota service's database layer).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]


def test_metadata_labels_and_user(dk, hub_image):
    info = dk.inspect(hub_image)
    config = info["Config"]
    assert config["User"] == "1000:1000"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == dk.project_version()
    assert labels["org.opencontainers.image.source"]
    assert labels["org.opencontainers.image.source"] != "unknown"
    # The commit the image was built from (HEAD at build time; other work may commit since).
    revision = labels["org.opencontainers.image.revision"]
    assert re.fullmatch(r"[0-9a-f]{40}", revision), revision
    known = subprocess.run(["git", "-C", str(dk.repo), "cat-file", "-e", f"{revision}^{{commit}}"])
    assert known.returncode == 0, f"{revision} is not a commit of this repository"
    assert config["Cmd"][:2] == ["jupyterhub", "--config"]


def test_no_process_keeps_the_build_lock(dk, hub_image):
    """The build script serialises builds with a lock on a file; anything it leaves running (the
    Docker engine it may start, its wheel server) must not inherit that lock, or the next build
    waits for it until it times out (which is how a notebook build after a hub build once hung)."""
    lock = dk.repo / ".cache" / "images" / "build.lock"
    holders = []
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) == str(lock):
                pid = fd.parts[2]
                holders.append(f"{pid}: {Path('/proc', pid, 'cmdline').read_bytes()[:80]!r}")
        except OSError:
            continue  # a process or descriptor that went away while we looked
    assert not holders, f"processes still hold {lock}: {holders}"


def test_runs_as_non_root_with_a_writable_workdir(dk, hub_image):
    out = dk.run_in(
        hub_image, "bash", "-c", "id -u; id -g; pwd; touch ./probe && echo writable"
    ).stdout
    assert out.split() == ["1000", "1000", "/srv/jupyterhub", "writable"]
    # The software itself is read-only to the hub's user.
    proc = dk.run_in(hub_image, "bash", "-c", "touch /opt/venv/probe", check=False)
    assert proc.returncode != 0


def test_bundled_policy_validates(dk, hub_image):
    from hub_config.policy import load_policy

    out = dk.run_in(
        hub_image,
        "python",
        "-c",
        "import json; from hub_config.policy import load_policy; p = load_policy(); "
        "print(json.dumps(sorted(p.tiers)))",
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == sorted(load_policy().tiers)


def test_broken_policy_is_refused_with_a_clear_error(dk, hub_image, tmp_path):
    bad = tmp_path / "policy.yaml"
    bad.write_text("tiers: [this is: not: valid\n")
    bad.chmod(0o644)
    tmp_path.chmod(0o755)
    proc = dk.run_in(
        hub_image,
        "python",
        "-c",
        "from hub_config.policy import load_policy; load_policy()",
        volumes={str(tmp_path): "/config:ro"},
        env={"ROMAN_POLICY_FILE": "/config/policy.yaml"},
        check=False,
    )
    assert proc.returncode != 0
    assert "PolicyError" in proc.stderr and "not valid YAML" in proc.stderr


def test_hub_side_packages_load(dk, hub_image):
    script = (
        "import importlib, json\n"
        "mods = ['jupyterhub.app', 'kubespawner', 'oauthenticator.generic', 'psycopg',\n"
        "        'sqlalchemy', 'alembic', 'authlib', 'dask_gateway_server.app',\n"
        "        'hub_config.policy']\n"
        "for m in mods: importlib.import_module(m)\n"
        "from importlib.metadata import version\n"
        "from jupyterhub.app import JupyterHub\n"
        "# Resolved the way JupyterHub resolves the names a config file gives it.\n"
        "hub = JupyterHub(spawner_class='kubespawner.KubeSpawner',\n"
        "                 authenticator_class='generic-oauth')\n"
        "print(json.dumps({'jupyterhub': version('jupyterhub'),\n"
        "                  'spawner': hub.spawner_class.__name__,\n"
        "                  'auth': hub.authenticator_class.__name__}))\n"
    )
    out = json.loads(dk.run_in(hub_image, "python", "-c", script).stdout.strip().splitlines()[-1])
    assert out == {
        "jupyterhub": out["jupyterhub"],
        "spawner": "KubeSpawner",
        "auth": "GenericOAuthenticator",
    }
    assert out["jupyterhub"].startswith("6.")


def test_jupyterhub_cli_and_config_file(dk, hub_image):
    out = dk.run_in(hub_image, "jupyterhub", "--help-all").stdout
    assert "--JupyterHub.spawner_class" in out and "--JupyterHub.db_url" in out
    # The config file the image's CMD names is the one this tree ships.
    target = dk.run_in(
        hub_image, "readlink", "-e", "/etc/jupyterhub/jupyterhub_config.py"
    ).stdout.strip()
    assert target.endswith("/site-packages/hub_config/jupyterhub_config.py")


# --------------------------------------------------------------------------- chart mode
def _render_hub(dk, example: str) -> dict:
    """The hub pod exactly as the chart renders it for one of its example values files."""
    import shutil

    import yaml

    helm = shutil.which("helm") or str(dk.repo / ".local" / "bin" / "helm")
    out = subprocess.run(
        [
            helm,
            "template",
            "rp",
            str(dk.repo / "helm" / "roman-platform"),
            "-f",
            str(dk.repo / "helm" / "examples" / f"{example}.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]

    def find(kind: str, name: str) -> dict:
        return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)

    deploy = find("Deployment", "rp-hub")
    pod = deploy["spec"]["template"]["spec"]
    return {
        "pod": pod,
        "container": next(c for c in pod["containers"] if c["name"] == "hub"),
        "configmap": find("ConfigMap", "rp-hub"),
        "secret": find("Secret", "rp-hub"),
        "docs": docs,
    }


@pytest.mark.parametrize("example", ["kind", "minikube", "cloud-production"])
def test_chart_mode_config_loads_as_the_chart_runs_it(dk, hub_image, tmp_path, example):
    """jupyterhub_config.py, loaded by JupyterHub's own loader inside the image, with the files,
    environment, user and read-only root filesystem the chart's hub Deployment gives it."""
    r = _render_hub(dk, example)
    pod, c = r["pod"], r["container"]
    # The chart runs these images, with the command the image itself defaults to.
    assert c["image"].split(":")[0] == "roman-platform/hub"
    assert c["command"] == dk.inspect(hub_image)["Config"]["Cmd"]
    sec = c["securityContext"]
    args = [
        "run",
        "--rm",
        "--network",
        "host",
        "--user",
        f"{sec['runAsUser']}:{sec['runAsGroup']}",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-w",
        c["workingDir"],
    ]
    if sec.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    tmp_path.chmod(0o755)
    for vm in c["volumeMounts"]:
        vol = next(v for v in pod["volumes"] if v["name"] == vm["name"])
        folder = tmp_path / vm["name"]
        folder.mkdir()
        files = {}
        if "configMap" in vol:
            files = r["configmap"]["data"]
        elif "secret" in vol:
            files = r["secret"]["stringData"]
        for key, text in files.items():
            (folder / key).write_text(text)
            (folder / key).chmod(0o644)
        os.chown(folder, sec["runAsUser"], sec["runAsGroup"])
        args += ["-v", f"{folder}:{vm['mountPath']}" + (":ro" if vm.get("readOnly") else "")]
    for e in c["env"]:
        if "value" in e:
            value = e["value"]
        elif "secretKeyRef" in e["valueFrom"]:
            ref = e["valueFrom"]["secretKeyRef"]
            # Secrets the operator creates (e.g. the OIDC client secret) get a stand-in value.
            own = ref["name"] == "rp-hub"
            value = r["secret"]["stringData"][ref["key"]] if own else "operator-set"
        else:
            value = {"metadata.namespace": "roman", "status.podIP": "127.0.0.1"}[
                e["valueFrom"]["fieldRef"]["fieldPath"]
            ]
        args += ["-e", f"{e['name']}={value}"]
    script = (
        "import json\n"
        "from jupyterhub.app import JupyterHub\n"
        "app = JupyterHub()\n"
        f"app.load_config_file({c['command'][-1]!r})\n"
        "hub = JupyterHub(config=app.config)\n"
        "from hub_config.policy import load_policy\n"
        "print(json.dumps({'spawner': hub.spawner_class.__name__,\n"
        "                  'auth': hub.authenticator_class.__name__,\n"
        "                  'services': sorted(s['name'] for s in hub.services),\n"
        "                  'tiers': sorted(load_policy().tiers)}))\n"
    )
    proc = dk.docker(*args, hub_image, "python", "-c", script, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["spawner"] == "TierKubeSpawner"
    assert out["auth"] == "RomanOIDCAuthenticator"
    assert "dask-gateway" in out["services"]
    policy = yaml_load(r["configmap"]["data"]["policy.yaml"])
    assert out["tiers"] == sorted(policy["tiers"])
    # The notebook and Dask pods run the notebook image.
    values = yaml_load(r["configmap"]["data"]["values.yaml"])
    assert values["singleuser"]["image"]["name"] == "roman-platform/notebook"


def yaml_load(text: str):
    import yaml

    return yaml.safe_load(text)
