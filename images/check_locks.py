"""Checks, offline, that the images' locks match pyproject.toml's dependency groups.

A dependency added to a group and not locked (or locked and no longer in any group) would build
an image that differs from what the project declares; this finds it without a network: it reads
the `# via` annotations that ``uv pip compile`` (scripts/lock.sh) writes under each pin.

Usage: python images/check_locks.py [REPO]       exit 1 and one line per problem if inconsistent
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

#: image -> the optional-dependency groups it ships besides the core dependencies ("a+b": both;
#: the TAP image is the hub image plus the tap group)
IMAGE_GROUPS: dict[str, str] = {"hub": "hub", "notebook": "science", "tap": "hub+tap"}
PROJECT_MARK = "(pyproject.toml)"


@dataclass
class Pin:
    name: str
    version: Version
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def parse_lock(text: str) -> dict[str, Pin]:
    """Pins of a ``uv pip compile --generate-hashes`` file (default 'split' annotation style)."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    in_via = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or (line.startswith("#") and current is None):
            continue
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s\\;]+)", raw)
        if m:
            current = Pin(canonicalize_name(m.group(1)), Version(m.group(3)))
            if current.name in pins:
                raise ValueError(f"line {lineno}: {current.name} pinned twice")
            pins[current.name] = current
            in_via = False
            continue
        if current is None:
            raise ValueError(f"line {lineno}: unexpected text before the first pin: {line!r}")
        if line.startswith("--hash="):
            current.hashes.append(line.removeprefix("--hash=").rstrip("\\ ").strip())
        elif line.startswith("# via"):
            rest = line.removeprefix("# via").strip()
            in_via = not rest
            if rest:
                current.via.append(rest)
        elif line.startswith("#") and in_via:
            current.via.append(line.lstrip("#").strip())
        elif line.startswith("#"):
            continue
        else:
            raise ValueError(f"line {lineno}: not a pin, hash or annotation: {line!r}")
    return pins


def declared(pyproject: dict, group: str) -> list[Requirement]:
    """Core dependencies plus optional groups (``a+b``: both), as packaging Requirements."""
    project = pyproject["project"]
    groups = project.get("optional-dependencies", {})
    wanted = list(project.get("dependencies", []))
    for name in group.split("+"):
        if name not in groups:
            raise KeyError(f"pyproject.toml has no optional-dependencies group '{name}'")
        wanted += groups[name]
    return [Requirement(r) for r in wanted]


def check(pyproject: dict, lock_text: str, group: str) -> list[str]:
    """Every problem found, one sentence each; empty when the lock matches the group."""
    problems: list[str] = []
    try:
        pins = parse_lock(lock_text)
    except ValueError as exc:
        return [f"unreadable lock: {exc}"]
    if not pins:
        return ["the lock pins nothing"]
    reqs = declared(pyproject, group)
    wanted = {canonicalize_name(r.name) for r in reqs}
    for req in reqs:
        name = canonicalize_name(req.name)
        pin = pins.get(name)
        if pin is None:
            problems.append(f"{req} is in pyproject.toml [{group}] but not in the lock")
        elif req.specifier and not req.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{name}=={pin.version} in the lock does not satisfy '{req}'")
    for name, pin in sorted(pins.items()):
        if not pin.hashes:
            problems.append(f"{name} has no hash in the lock")
        if not pin.via:
            problems.append(f"{name} is in the lock with no reason ('# via')")
        if any(PROJECT_MARK in v for v in pin.via) and name not in wanted:
            problems.append(
                f"{name} is locked as a direct dependency but is not in "
                f"pyproject.toml's core or [{group}] dependencies"
            )
    return problems


def check_repo(repo: Path) -> dict[str, list[str]]:
    pyproject = tomllib.loads((repo / "pyproject.toml").read_text())
    out: dict[str, list[str]] = {}
    for image, group in IMAGE_GROUPS.items():
        lock = repo / "images" / image / "requirements.lock"
        if not lock.is_file():
            out[image] = [f"{lock.relative_to(repo)} is missing: run scripts/lock.sh {image}"]
        else:
            out[image] = check(pyproject, lock.read_text(), group)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    repo = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent
    bad = 0
    for image, problems in check_repo(repo).items():
        for p in problems:
            print(f"images/{image}/requirements.lock: {p}")
            bad += 1
    if bad:
        print(f"{bad} problem(s); regenerate with scripts/lock.sh", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
