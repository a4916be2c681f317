"""Checks, inside the notebook image, that what the lock promises is what is installed and usable.

- every pin of the image's lock is installed at exactly the locked version;
- every package the project declares for the notebook (core + 'science' dependencies, read from
  the installed project's own metadata) imports, through each of its top-level modules;
- every module of platform_lib imports.
Prints a JSON summary; exits 1 and names each failure otherwise.

Usage: python check_packages.py [LOCK]     (default /opt/roman/requirements.lock)
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import sys
import traceback
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "roman-science-platform"
GROUP = "science"


def locked(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s\\;]+)", line)
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def declared() -> list[str]:
    """Names the project declares for this image: core dependencies plus the science extra."""
    env = default_environment()
    names = []
    for spec in metadata.requires(PROJECT) or []:
        req = Requirement(spec)
        if req.marker is None or (
            req.marker.evaluate({**env, "extra": GROUP})
            and not req.marker.evaluate({**env, "extra": ""})
        ):
            names.append(canonicalize_name(req.name))
    return sorted(set(names))


def top_level_modules(dist_name: str) -> list[str]:
    """A distribution's importable top-level modules, from its installed file list."""
    dist = metadata.distribution(dist_name)
    tops = set()
    for f in dist.files or []:
        parts = f.parts
        if not parts or parts[0].endswith((".dist-info", ".data")) or parts[0] in {"..", "bin"}:
            continue
        if len(parts) > 1 and (f.name == "__init__.py"):
            tops.add(parts[0])
        elif len(parts) == 1 and f.suffix in {".py", ".so"}:
            tops.add(f.name.split(".")[0])  # module.py, or an extension module.cpython-311-….so
    return sorted(t for t in tops if t.isidentifier() and not t.startswith("_"))


def main(argv: list[str]) -> int:
    lock = Path(argv[0] if argv else "/opt/roman/requirements.lock")
    failures: list[str] = []
    pins = locked(lock)
    for name, version in sorted(pins.items()):
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            failures.append(f"{name}=={version} is locked but not installed")
            continue
        if have != version:
            failures.append(f"{name}: locked {version}, installed {have}")

    imported = []
    for name in declared():
        mods = top_level_modules(name)
        if not mods:
            failures.append(f"{name}: no importable top-level module found")
        for mod in mods:
            try:
                importlib.import_module(mod)
                imported.append(mod)
            except Exception:
                failures.append(
                    f"import {mod} (from {name}) failed:\n{traceback.format_exc(limit=3)}"
                )

    import platform_lib

    for info in pkgutil.walk_packages(platform_lib.__path__, "platform_lib."):
        try:
            importlib.import_module(info.name)
            imported.append(info.name)
        except Exception:
            failures.append(f"import {info.name} failed:\n{traceback.format_exc(limit=3)}")

    print(
        json.dumps(
            {
                "locked": len(pins),
                "declared": declared(),
                "imported": sorted(imported),
                "failures": len(failures),
            }
        )
    )
    for f in failures:
        print(f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
