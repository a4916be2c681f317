"""The tier policy's software environments, as the spawner, the gateway and the image build use them.

* :func:`local_runtime` / :func:`local_mismatch`: on the local platform servers and Dask
  workers are local processes, so an environment can start there only in a Python environment
  that has its pinned versions: the platform's own (normally the default environment), or a
  *local overlay* made for it (:func:`make_local`: a venv holding only the packages whose
  versions differ, on top of the platform's, under ``$ROMAN_LOCAL_ENVIRONMENTS_DIR/<name>``,
  default ``<checkout>/.cache/environments/<name>``). Otherwise :func:`local_mismatch` says why
  (the spawn form greys the environment out, the spawner and the gateway refuse it).
* :func:`lock_versions` / :func:`environment_for_lock`: which policy environment an image lock
  builds; :func:`build_args` gives ``scripts/build-images.sh`` the release name and the pinned
  versions it labels the notebook image with::

      python -m hub_config.environments build-args images/notebook/requirements.lock
      python -m hub_config.environments make-local 2026.2     # needs the package index
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from hub_config.policy import Policy, SoftwareEnvironment, load_policy
from platform_lib import env_contract

#: Image labels (and build args) carrying an environment; the notebook image has each.
LABEL_PREFIX = "org.roman-platform."
LABELS = {
    "environment": env_contract.ENVIRONMENT,
    "romancal": "ROMANCAL_VERSION",
    "romanisim": "ROMANISIM_VERSION",
    "roman-datamodels": env_contract.DATAMODELS_VERSION,
    "crds-context": "CRDS_CONTEXT",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions() -> dict[str, str]:
    """The pipeline versions installed in this Python environment (the local platform's)."""
    from platform_lib.environment import PIPELINE_PACKAGES, package_versions

    return package_versions(PIPELINE_PACKAGES)


#: Where local overlays live (one folder per environment name).
LOCAL_ENVIRONMENTS_VAR = env_contract.LOCAL_ENVIRONMENTS_DIR


def local_environments_dir() -> Path:
    """``$ROMAN_LOCAL_ENVIRONMENTS_DIR``, else ``.cache/environments`` beside the platform's venv
    (the checkout's: ``<checkout>/.venv`` -> ``<checkout>/.cache/environments``)."""
    chosen = os.environ.get(LOCAL_ENVIRONMENTS_VAR)
    return Path(chosen) if chosen else Path(sys.prefix).parent / ".cache" / "environments"


def _site_packages(prefix: Path) -> Path:
    rel = Path(sysconfig.get_path("purelib")).relative_to(sys.prefix)
    return prefix / rel


def overlay_versions(prefix: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Pipeline versions seen by the overlay's Python: its own packages shadow the platform's."""
    from platform_lib.environment import PIPELINE_PACKAGES

    have = dict(installed_versions() if base is None else base)
    site = _site_packages(prefix)
    wanted = {_norm(p): p for p in PIPELINE_PACKAGES}
    for info in site.glob("*.dist-info") if site.is_dir() else ():
        name, _, ver = info.name[: -len(".dist-info")].rpartition("-")
        if _norm(name) in wanted:
            have[wanted[_norm(name)]] = ver
    return have


@dataclass(frozen=True)
class LocalRuntime:
    """Where a local server or Dask process of an environment runs from."""

    name: str
    #: The overlay's prefix; None: the platform's own Python environment.
    prefix: Path | None = None

    @property
    def bin_dir(self) -> Path | None:
        return None if self.prefix is None else self.prefix / "bin"

    def command(self, cmd: list[str]) -> list[str]:
        """``cmd`` with its program taken from the overlay (same script name), if there is one."""
        if self.prefix is None or not cmd:
            return list(cmd)
        program = self.prefix / "bin" / Path(cmd[0]).name
        if not program.exists():
            raise FileNotFoundError(
                f"local environment {self.name} ({self.prefix}) has no {program.name}; "
                f"remake it: python -m hub_config.environments make-local {self.name}"
            )
        return [str(program), *cmd[1:]]

    def path(self, current: str | None = None) -> str:
        """``PATH`` with the overlay's programs first."""
        current = os.environ.get("PATH", "") if current is None else current
        return current if self.bin_dir is None else f"{self.bin_dir}{os.pathsep}{current}"


class EnvironmentUnavailable(LookupError):
    """The environment cannot start on this local platform; the message says why and what to do."""


def local_runtime(
    env: SoftwareEnvironment, installed: dict[str, str] | None = None
) -> LocalRuntime:
    """Where ``env`` runs locally: the platform's Python if it has the pins, else its overlay."""
    have = installed_versions() if installed is None else installed
    want = env.versions.packages()
    if all(have.get(p) == v for p, v in want.items()):
        return LocalRuntime(env.name)
    prefix = local_environments_dir() / env.name
    if (prefix / "bin" / "python").exists():
        theirs = overlay_versions(prefix, have)
        if all(theirs.get(p) == v for p, v in want.items()):
            return LocalRuntime(env.name, prefix)
        have = theirs
    wrong = [
        f"{pkg} {v} (installed: {have.get(pkg, 'none')})"
        for pkg, v in want.items()
        if have.get(pkg) != v
    ]
    raise EnvironmentUnavailable(
        f"environment {env.name} pins {', '.join(wrong)}; local servers and Dask workers run "
        f"from local Python environments, and none has these (make one with `python -m "
        f"hub_config.environments make-local {env.name}`; on Kubernetes it runs its own image)"
    )


def local_mismatch(env: SoftwareEnvironment, installed: dict[str, str] | None = None) -> str | None:
    """Why ``env`` cannot run on this local platform, or None when it can."""
    try:
        local_runtime(env, installed)
    except EnvironmentUnavailable as exc:
        return str(exc)
    return None


def make_local(env: SoftwareEnvironment, root: Path | None = None, *, log=print) -> Path:
    """Make (or remake) the local overlay of ``env``: a venv of the platform's own Python whose
    site-packages come first and hold only what ``env`` pins differently (and what those pins
    require), with the platform's packages behind it (a ``.pth`` file), its configuration
    (``etc``, ``share``: Jupyter and Dask settings, extensions) linked, and every program of
    the platform's venv re-pointed at the overlay's Python. Needs the package index (pip)."""
    if sys.prefix == sys.base_prefix:
        raise EnvironmentUnavailable("make-local must run from the platform's virtual environment")
    root = root or local_environments_dir()
    prefix = root / env.name
    base = Path(sys.prefix)
    base_python = Path(getattr(sys, "_base_executable", sys.executable))
    log(f"making {prefix} on {base}")
    subprocess.run(
        [str(base_python), "-m", "venv", "--without-pip", "--clear", str(prefix)],
        check=True,
        timeout=300,
    )
    site = _site_packages(prefix)
    # addsitedir, not a bare path line: the platform's own .pth files (its editable install of
    # platform_lib, for one) must be processed too; appended, so the overlay's packages win.
    (site / "_roman_platform_base.pth").write_text(
        f"import site; site.addsitedir({str(_site_packages(base))!r})\n"
    )
    for shared in ("etc", "share"):
        if (base / shared).exists() and not (prefix / shared).exists():
            (prefix / shared).symlink_to(base / shared)
    pins = [f"{p}=={v}" for p, v in env.versions.packages().items()]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(prefix / "bin" / "python"),
            "install",
            "--disable-pip-version-check",
            "--quiet",
            *pins,
        ],
        check=True,
        timeout=1800,
    )
    # The platform's programs (jupyterhub-singleuser, dask, jupyter...) run by the overlay's
    # Python: same scripts, new interpreter line.
    made = 0
    for script in sorted((base / "bin").iterdir()):
        target = prefix / "bin" / script.name
        if target.exists() or not script.is_file():
            continue
        try:
            head, _, rest = script.read_text().partition("\n")
        except (UnicodeDecodeError, OSError):
            continue
        if head.startswith("#!") and str(base) in head:
            target.write_text(f"#!{prefix / 'bin' / 'python'}\n{rest}")
            target.chmod(0o755)
            made += 1
    theirs = overlay_versions(prefix)
    wrong = {p: theirs.get(p) for p, v in env.versions.packages().items() if theirs.get(p) != v}
    if wrong:
        raise EnvironmentUnavailable(f"{prefix} was made but reports {wrong}")
    log(f"{env.name}: {', '.join(pins)} in {prefix} ({made} programs)")
    return prefix


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
        env_contract.ENVIRONMENT: env.name,
        "ROMANCAL_VERSION": env.versions.romancal,
        "ROMANISIM_VERSION": env.versions.romanisim,
        env_contract.DATAMODELS_VERSION: env.versions.roman_datamodels,
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
    ml = sub.add_parser(
        "make-local",
        help="make the local platform's overlay of an environment (pip, from the package index)",
    )
    ml.add_argument("name", nargs="?", help="the environment's release name, e.g. 2026.2")
    ml.add_argument(
        "--missing",
        action="store_true",
        help="every policy environment this platform cannot run yet (what `make setup` does)",
    )
    ml.add_argument(
        "--dir",
        type=Path,
        help=f"folder of local environments (default: ${LOCAL_ENVIRONMENTS_VAR} or "
        "<checkout>/.cache/environments)",
    )
    ml.add_argument("--policy", help="tier policy file (default: the bundled one)")
    args = parser.parse_args(argv)
    try:
        policy = load_policy(args.policy)
        if args.command == "make-local":
            if args.missing == bool(args.name):
                parser.error("make-local needs an environment name or --missing (not both)")
            wanted = (
                [policy.environment(args.name)]
                if args.name
                else [e for e in policy.environments if local_mismatch(e) is not None]
            )
            for env in wanted:
                make_local(env, args.dir)
            if not wanted:
                print("every environment of the policy runs on this platform already")
            return 0
        found = build_args(policy, args.lock.read_text())
    except (OSError, LookupError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for key, value in found.items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
