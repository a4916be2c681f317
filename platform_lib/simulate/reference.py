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

import numpy as np

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
    from platform_lib.data import refset as refset_module  # reads the generator's sets

    try:
        refset = refset_module.open_reference_set(source)
    except refset_module.ReferenceSetError as exc:
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


def load_reference_files(image_mod, ref: dict) -> dict:
    """romanisim's reference data with file paths opened by romanisim's own model classes.

    romanisim 0.14's ``gather_reference_data`` only opens files when it also asks CRDS; its
    model classes read files directly when given them. So: numbers and None go through
    ``gather_reference_data`` as usual, and each file path is loaded by the class romanisim
    would use (which also trims the 4-pixel reference border).
    """
    import roman_datamodels as rdm
    from romanisim import image, models
    from romanisim.models import parameters

    files = {k: (v if isinstance(v, str) else None) for k, v in ref.items()}
    plain = {
        k: (None if isinstance(v, str) and k != "darkdecaysignal" else v) for k, v in ref.items()
    }
    # the classes' fall-backs when a file is absent
    for key in ("readnoise", "gain", "dark", "saturation"):
        if plain[key] is None:
            plain[key] = {
                "readnoise": models.read_noise,
                "gain": models.gain,
                "dark": models.dark_current,
                "saturation": 55000,
            }[key]
    saved = dict(parameters.reference_data)
    parameters.reference_data.update(plain)
    try:
        out = image.gather_reference_data(image_mod, usecrds=False)
    finally:
        parameters.reference_data.clear()
        parameters.reference_data.update(saved)
    if files["gain"]:
        out["gain"] = models.Gain(usecrds=True, reffiles=files).gain
    if files["readnoise"]:
        out["readnoise"] = models.ReadNoise(usecrds=True, reffiles=files).read_noise
    if files["dark"]:
        out["dark"] = models.DarkCurrent(usecrds=True, getdq=True, reffiles=files).dark_rate
    if files["saturation"]:
        out["saturation"] = models.Saturation(
            usecrds=True, getdq=True, reffiles=files
        ).saturation_level
    if files["flat"]:
        with rdm.open(files["flat"]) as flat:
            out["flat"] = np.asarray(flat.data, dtype=np.float32).copy()
    if files.get("ipc"):
        out["ipc"] = models.IPC(usecrds=True, reffiles=files)
    inl = bool(files.get("integralnonlinearity"))
    saturation = out["saturation"]
    if files["linearity"]:
        out["linearity"] = models.Nonlinearity(
            usecrds=True,
            getdq=True,
            reftype="linearity",
            reffiles=files,
            saturation=saturation * 1.1,
            integralnonlinearity=inl or None,
        )
    if files["inverselinearity"]:
        inv_sat = (
            out["linearity"].apply(saturation) if out.get("linearity") is not None else saturation
        )
        out["inverselinearity"] = models.Nonlinearity(
            usecrds=True,
            getdq=True,
            reftype="inverselinearity",
            reffiles=files,
            saturation=inv_sat * 1.1,
            integralnonlinearity=inl or None,
        )
    out["reffiles"] = dict(ref.items())
    return out
