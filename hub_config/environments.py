"""The tier policy's software environments, as the spawner, the gateway and the image build use them.

* :func:`local_mismatch`: on the local platform every server and Dask worker runs the platform's
  own Python environment, so an environment can start there only when its pinned versions are
  the installed ones; this says why not otherwise (the spawn form greys it out, the spawner and
  the gateway refuse it with that sentence).
* :func:`lock_versions` / :func:`environment_for_lock`: which policy environment an image lock
  builds; :func:`build_args` gives ``scripts/build-images.sh`` the release name and the pinned
  versions it labels the notebook image with::

      python -m hub_config.environments build-args images/notebook/requirements.lock
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from hub_config.policy import Policy, SoftwareEnvironment, load_policy

#: Image labels (and build args) carrying an environment; the notebook image has each.
LABEL_PREFIX = "org.roman-platform."
LABELS = {
    "environment": "ROMAN_ENVIRONMENT",
    "romancal": "ROMANCAL_VERSION",
    "romanisim": "ROMANISIM_VERSION",
    "roman-datamodels": "ROMAN_DATAMODELS_VERSION",
    "crds-context": "CRDS_CONTEXT",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions() -> dict[str, str]:
    """The pipeline versions installed in this Python environment (the local platform's)."""
    from platform_lib.environment import PIPELINE_PACKAGES, package_versions

    return package_versions(PIPELINE_PACKAGES)


def local_mismatch(env: SoftwareEnvironment, installed: dict[str, str] | None = None) -> str | None:
    """Why ``env`` cannot run on this machine's one Python environment, or None when it can."""
    have = installed_versions() if installed is None else installed
    wrong = [
        f"{pkg} {want} (installed: {have.get(pkg, 'none')})"
        for pkg, want in env.versions.packages().items()
        if have.get(pkg) != want
    ]
    if not wrong:
        return None
    return (
        f"environment {env.name} pins {', '.join(wrong)}; the local platform runs one Python "
        "environment, so only an environment matching it can start here (the others run on "
        "Kubernetes, from their own image)"
    )


def lock_versions(lock_text: str) -> dict[str, str]:
    """Pinned versions (normalised distribution name -> version) of a pip-compile lock."""
    out = {}
    for line in lock_text.splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line.strip())
        if m:
            out[_norm(m.group(1))] = m.group(2)
    return out


def environment_for_lock(policy: Policy, lock_text: str) -> SoftwareEnvironment:
    """The policy environment whose pinned versions are the lock's; a clear error otherwise."""
    pins = lock_versions(lock_text)
    if not policy.environments:
        raise LookupError("the tier policy lists no environments (hub_config/policy.yaml)")
    for env in policy.environments:
        if all(pins.get(_norm(p)) == v for p, v in env.versions.packages().items()):
            return env
    names = policy.environments[0].versions.packages()
    have = ", ".join(f"{p} {pins.get(_norm(p), 'absent')}" for p in names)
    raise LookupError(
        f"the lock pins {have}, which no environment of the tier policy carries "
        f"({', '.join(policy.environment_names)}): add an environment for it to "
        "hub_config/policy.yaml (docs/environments.md) before building the image"
    )


def build_args(policy: Policy, lock_text: str) -> dict[str, str]:
    """``docker build --build-arg`` values naming the lock's environment and its versions."""
    env = environment_for_lock(policy, lock_text)
    return {
        "ROMAN_ENVIRONMENT": env.name,
        "ROMANCAL_VERSION": env.versions.romancal,
        "ROMANISIM_VERSION": env.versions.romanisim,
        "ROMAN_DATAMODELS_VERSION": env.versions.roman_datamodels,
        "CRDS_CONTEXT": env.versions.crds_context,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hub_config.environments",
        description="The tier policy's software environments, for the image build.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ba = sub.add_parser(
        "build-args", help="print NAME=VALUE lines: the lock's environment and its versions"
    )
    ba.add_argument("lock", type=Path, help="the image's requirements.lock")
    ba.add_argument("--policy", help="tier policy file (default: the bundled one)")
    args = parser.parse_args(argv)
    try:
        found = build_args(load_policy(args.policy), args.lock.read_text())
    except (OSError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for key, value in found.items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
