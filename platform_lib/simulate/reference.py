"""The reference-data hook: make romanisim use a reference-file set, so truth and calibration agree.

romanisim reads its detector model (dark, gain, read noise, saturation, (inverse)
linearity, IPC, dark decay, flat) from ``romanisim.models.parameters.reference_data``: a
number or a file path per type. romancal calibrates with the same types. Pointing both at one
reference-file set (the set ``platform_lib.calibrate.reference_files`` generates, or any
folder/mapping of roman_datamodels reference files) makes the simulated truth and the
calibration consistent by construction. The hook is a context manager so a simulation never
leaves the global romanisim state changed for the next one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import SimulationInputError


def resolve_reference_data(
    source: Mapping[str, Any] | str | os.PathLike | None, optical_element: str | None = None
) -> dict[str, Any]:
    """A complete ``reference_data`` dict from a mapping, a reference-set folder/URL, or None.

    A mapping gives values per type (numbers or file paths); types it omits keep romanisim's
    defaults. A folder or store URL is read as a reference-file set (its manifest), taking the
    flat of ``optical_element``.
    """
    from romanisim.models import parameters

    out = dict(parameters.reference_data)
    if source is None:
        return out
    if isinstance(source, Mapping):
        unknown = set(source) - set(out)
        if unknown:
            raise SimulationInputError(
                f"unknown reference type(s) {sorted(unknown)}; romanisim knows {sorted(out)}"
            )
        for key, value in source.items():
            if isinstance(value, (str, os.PathLike)) and not Path(value).exists():
                raise SimulationInputError(f"reference file for {key!r} not found: {value}")
            out[key] = os.fspath(value) if isinstance(value, os.PathLike) else value
        return out
    from platform_lib.calibrate import reference_files  # the issue-11 generator's reader

    try:
        refset = reference_files.open_reference_set(source)
    except reference_files.ReferenceSetError as exc:
        raise SimulationInputError(str(exc)) from exc
    for key in out:
        if key == "flat":
            if optical_element and refset.has(f"flat_{optical_element}"):
                out[key] = str(refset.path(f"flat_{optical_element}"))
        elif refset.has(key):
            out[key] = str(refset.path(key))
    return out


@contextlib.contextmanager
def use_reference_data(
    source: Mapping[str, Any] | str | os.PathLike | None, optical_element: str | None = None
) -> Iterator[dict[str, Any]]:
    """Temporarily install reference data into romanisim; restore the previous values after."""
    from romanisim.models import parameters

    previous = dict(parameters.reference_data)
    resolved = resolve_reference_data(source, optical_element)
    parameters.reference_data.clear()
    parameters.reference_data.update(resolved)
    try:
        yield resolved
    finally:
        parameters.reference_data.clear()
        parameters.reference_data.update(previous)
