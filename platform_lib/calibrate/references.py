"""Where a pipeline run gets its reference files: a generated set, or CRDS.

Production: the spawner sets ``CRDS_PATH`` (the shared cache on the data store) and
``CRDS_SERVER_URL``; romancal asks CRDS as the mission's own processing does. Here, with no
reachable CRDS server, a reference-file set is used through the steps' ``override_<reftype>``
parameters, with CRDS in local mode against an empty cache that only answers the context name
each step records. With neither, a run stops before any work with a message saying so.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.refset import ReferenceSet, ReferenceSetError, open_reference_set

# ExposurePipeline step -> the reference types it asks for (Step.reference_file_types).
STEP_REFTYPES: dict[str, tuple[str, ...]] = {
    "dq_init": ("mask",),
    "saturation": ("saturation",),
    "refpix": ("refpix",),
    "dark_decay": ("darkdecaysignal",),
    "linearity": ("linearity", "inverselinearity", "integralnonlinearity"),
    "rampfit": ("readnoise", "gain"),
    "dark_current": ("dark",),
    "assign_wcs": ("distortion",),
    "photom": ("photom",),
    "flatfield": ("flat",),
    "source_catalog": ("apcorr", "epsf"),
}
# Steps that cannot run on a sub-array: they model the full 4096² readout.
FULL_FRAME_ONLY = {
    "refpix": "needs the 32 full 128-column amplifier channels",
    "dark_decay": "models read times of the full 4096x4096 frame",
}
LOCAL_CONTEXT = "roman_0001.pmap"


class NoReferenceSource(RuntimeError):
    """Neither a reference-file set nor a CRDS server is available."""


@dataclass(frozen=True)
class ReferenceSource:
    """The resolved source: ``refset`` for overrides, or CRDS (``refset is None``)."""

    refset: ReferenceSet | None
    crds_server: str | None = None
    crds_path: str | None = None

    @property
    def mode(self) -> str:
        return "reference-set" if self.refset is not None else "crds"

    def describe(self) -> str:
        if self.refset is not None:
            return f"reference-file set {self.refset.root}"
        return f"CRDS {self.crds_server} (cache {self.crds_path})"


def resolve(
    refs: str | Path | ReferenceSet | None, cache_dir: str | Path | None = None
) -> ReferenceSource:
    """Pick the reference source for a run, failing at once when there is none."""
    if isinstance(refs, ReferenceSet):
        return ReferenceSource(refset=refs)
    if refs:
        return ReferenceSource(refset=open_reference_set(refs, cache_dir=cache_dir))
    server = os.environ.get("CRDS_SERVER_URL")
    path = os.environ.get("CRDS_PATH")
    if server and path:
        return ReferenceSource(refset=None, crds_server=server, crds_path=path)
    missing = [n for n, v in (("CRDS_SERVER_URL", server), ("CRDS_PATH", path)) if not v]
    raise NoReferenceSource(
        "no reference files: no reference-file set was given (--refs / refs=) and CRDS is not "
        f"configured ({' and '.join(missing)} not set). On the platform the spawner sets "
        "CRDS_PATH and CRDS_SERVER_URL; elsewhere generate a set with "
        "'roman-platform calibrate refs DEST' and pass it."
    )


def step_overrides(
    source: ReferenceSource, optical_element: str, skipped: set[str]
) -> dict[str, dict[str, Any]]:
    """``{step: {override_<reftype>: path}}`` for every step that will run."""
    if source.refset is None:
        return {}
    rs = source.refset
    out: dict[str, dict[str, Any]] = {}
    for step, reftypes in STEP_REFTYPES.items():
        if step in skipped:
            continue
        params: dict[str, Any] = {}
        for reftype in reftypes:
            try:
                params[f"override_{reftype}"] = str(rs.reference_file(reftype, optical_element))
            except ReferenceSetError as exc:
                raise ReferenceSetError(
                    f"step {step!r} needs a {reftype!r} reference file for {optical_element}: {exc}"
                ) from None
        out[step] = params
    return out


def apply_overrides(pipe: Any, overrides: dict[str, dict[str, Any]]) -> None:
    """Set ``override_<reftype>`` on the pipeline's step instances.

    Set as attributes rather than through the steps' specs: stpipe reads overrides with
    ``getattr``, and some reference types a step asks for (the source catalog's ``epsf``) have
    no spec entry, so passing them as configuration would be rejected.
    """
    for step_name, params in overrides.items():
        step = getattr(pipe, step_name, None)
        if step is None:
            continue
        for key, value in params.items():
            setattr(step, key, value)


def _write_local_crds_config(root: Path) -> None:
    cfg = root / "config" / "roman"
    cfg.mkdir(parents=True, exist_ok=True)
    server_config = {
        "observatory": "roman",
        "operational_context": LOCAL_CONTEXT,
        "edit_context": LOCAL_CONTEXT,
        "last_synced": "2026-01-01 00:00:00",
        "force_remote_mode": False,
        "bad_files": "",
        "bad_files_list": [],
        "crds_version": {"str": "local"},
        "reference_url": {},
        "mappings_url": {},
    }
    (cfg / "server_config").write_text(repr(server_config))


@contextlib.contextmanager
def environment(source: ReferenceSource) -> Iterator[None]:
    """Process environment for one run; restored afterwards (workers run many exposures)."""
    saved = {
        k: os.environ.get(k)
        for k in (
            "STPIPE_DISABLE_CRDS_STEPPARS",
            "CRDS_MODE",
            "CRDS_PATH",
            "CRDS_SERVER_URL",
            "CRDS_CONTEXT",
        )
    }
    tmp = None
    try:
        os.environ["STPIPE_DISABLE_CRDS_STEPPARS"] = "true"
        if source.refset is not None:
            tmp = tempfile.TemporaryDirectory(prefix="crds-local-")
            _write_local_crds_config(Path(tmp.name))
            os.environ["CRDS_MODE"] = "local"
            os.environ["CRDS_PATH"] = tmp.name
            os.environ.pop("CRDS_SERVER_URL", None)
            os.environ["CRDS_CONTEXT"] = LOCAL_CONTEXT
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if tmp is not None:
            tmp.cleanup()
