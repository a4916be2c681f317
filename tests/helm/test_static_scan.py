"""A static security scan of the rendered chart (checkov), with every finding explained.

checkov runs from its own virtualenv (.local/checkov, made by scripts/install-k8s-tools.sh:
its pinned dependencies conflict with the science stack). Offline checkov reports no
severities, so every failed check must be in EXPLAINED with the reason it is accepted; a new
failed check (for example a privileged container or a hostPath) fails this test.
"""

from __future__ import annotations

import json
import subprocess

import pytest

#: check id -> why the chart accepts it (every other failed check fails the test)
EXPLAINED = {
    "CKV_K8S_21": "helm template leaves metadata.namespace unset; helm install -n sets it (never 'default')",
    "CKV_K8S_15": "tags are pinned (the schema refuses 'latest') and IfNotPresent is z2jh's default; "
    "Always would make every start depend on the registry",
    "CKV_K8S_43": "pinned tags instead of digests (an operator may mirror by digest into global.registry)",
    "CKV_K8S_35": "JupyterHub, CHP, the culler and the gateway read their tokens from the environment "
    "(CONFIGPROXY_AUTH_TOKEN, JUPYTERHUB_API_TOKEN, JUPYTERHUB_CRYPT_KEY) by design",
    "CKV_K8S_38": "the hub (KubeSpawner), quota service, gateway API, controller and traefik call the "
    "Kubernetes API (test_production/test_kubespawner list those calls); every other pod "
    "has automountServiceAccountToken: false",
    "CKV_K8S_40": "uid 1000 is the images' own user (the jovyan convention z2jh uses too); "
    "non-root and no privilege escalation are enforced",
    "CKV_K8S_8": "the culler has no server to probe, the pause placeholder nothing to check; the "
    "controller and quota service have readiness probes",
    "CKV_K8S_9": "the culler has no server, the pause placeholder nothing to check",
    "CKV2_K8S_5": "dask-gateway's KubeBackend reads each cluster's TLS secret (read_namespaced_secret, "
    "names made per cluster) in the user namespace only: a Role there, get only",
}


def test_checkov_findings_are_all_explained(chart, tmp_path):
    """One checkov run over every example's rendered manifests (its start-up dominates)."""
    exe = chart.REPO / ".local" / "checkov" / "bin" / "checkov"
    if not exe.exists():
        pytest.fail(
            "checkov is not installed: run scripts/install-k8s-tools.sh (make test does), which makes .local/checkov"
        )
    for config, files in chart.CONFIGS.items():
        (tmp_path / f"{config}.yaml").write_text(chart.template(files).stdout)
    proc = subprocess.run(
        [
            str(exe),
            "-d",
            str(tmp_path),
            "--framework",
            "kubernetes",
            "--quiet",
            "--compact",
            "-o",
            "json",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(proc.stdout)
    report = report[0] if isinstance(report, list) else report
    assert report["summary"]["parsing_errors"] == 0
    failed = report["results"]["failed_checks"]
    unexplained = sorted(
        {
            f"{f['check_id']} {f['check_name']}: {f['file_path']} {f['resource']}"
            for f in failed
            if f["check_id"] not in EXPLAINED
        }
    )
    assert not unexplained, "\n".join(unexplained)
    assert report["summary"]["passed"] > 2000  # the scan really ran over the objects
