"""Using a reference-file set: open it (local, or copied from the store), check it, find its files.

A set is a folder (or store prefix) of roman_datamodels reference files described by a
manifest (``refset.yaml``) listing each file and its checksum; the manifest is written last,
so a set whose manifest exists is complete. :mod:`platform_lib.calibrate.reference_files`
generates sets; this module is what calibration, simulation and validation need to use one, so
it lives here, below both (``platform_lib.simulate`` reads sets, ``platform_lib.calibrate``
writes and reads them, and calibration builds on simulation: a home in either would tie them
in a cycle).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import transfer

__all__ = ["MANIFEST", "ReferenceSet", "ReferenceSetError", "open_reference_set", "sha256_file"]

MANIFEST = "refset.yaml"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes (hex), read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


class ReferenceSetError(ValueError):
    """A reference-file set is missing, incomplete or does not fit the data."""


@dataclass(frozen=True)
class ReferenceSet:
    """A staged set, with local paths romancal and romanisim can open."""

    root: Path
    manifest: dict[str, Any]

    @property
    def detector(self) -> str:
        return self.manifest["spec"]["detector"]

    @property
    def shape(self) -> tuple[int, int]:
        ny, nx = self.manifest["shape"]
        return int(ny), int(nx)

    @property
    def subarray(self) -> bool:
        return bool(self.manifest["subarray"])

    @property
    def parameters(self) -> dict[str, float]:
        return dict(self.manifest["parameters"])

    def path(self, key: str) -> Path:
        entry = self.manifest["files"].get(key)
        if entry is None:
            raise ReferenceSetError(
                f"the reference set at {self.root} has no {key!r} file "
                f"(it holds: {', '.join(sorted(self.manifest['files']))})"
            )
        return self.root / entry["file"]

    def has(self, key: str) -> bool:
        return key in self.manifest["files"]

    def reference_file(self, reftype: str, optical_element: str | None = None) -> Path:
        if reftype in ("flat", "epsf"):
            if optical_element is None:
                raise ReferenceSetError(f"the {reftype} depends on the optical element; none given")
            return self.path(f"{reftype}_{optical_element}")
        return self.path(reftype)


def open_reference_set(
    location: str | os.PathLike[str], cache_dir: str | Path | None = None, verify: bool = False
) -> ReferenceSet:
    """Open a set from a folder or store prefix (remote sets are copied to ``cache_dir``)."""
    location = str(location)
    if transfer.is_remote(location):
        # one cache per set and machine: every task on a worker reuses the download
        key = hashlib.sha256(location.encode()).hexdigest()[:16]
        cache = Path(cache_dir or Path(tempfile.gettempdir()) / "roman-refsets" / key)
        try:
            man_local = transfer.fetch(transfer.join(location, MANIFEST), cache)
        except FileNotFoundError as exc:
            raise ReferenceSetError(
                f"no reference-file set at {location} ({MANIFEST} missing)"
            ) from exc
        manifest = yaml.safe_load(man_local.read_text())
        for entry in manifest["files"].values():
            local = cache / entry["file"]
            if not local.exists() or sha256_file(local) != entry["sha256"]:
                transfer.fetch(transfer.join(location, entry["file"]), cache)
        root = cache
    else:
        root = Path(location)
        man = root / MANIFEST
        if not man.exists():
            raise ReferenceSetError(f"no reference-file set at {root} ({MANIFEST} missing)")
        manifest = yaml.safe_load(man.read_text())
    refset = ReferenceSet(root=root, manifest=manifest)
    for key, entry in manifest["files"].items():
        p = root / entry["file"]
        if not p.exists():
            raise ReferenceSetError(f"reference set at {location}: {key} file {p.name} is missing")
        if verify and sha256_file(p) != entry["sha256"]:
            raise ReferenceSetError(f"reference set at {location}: {p.name} fails its checksum")
    return refset
