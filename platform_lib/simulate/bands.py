"""Roman optical elements and their throughputs, as romanisim and galsim know them.

Catalog fluxes are in maggies (AB flux / 3631 Jy), which is what romanisim reads from a
column named after the optical element; the electrons per second a source gives on a
detector are ``maggies * zeropoint_rate(element, detector)``.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ..instrument import DETECTORS, IMAGING_ELEMENTS, SPECTRAL_ELEMENTS
from .errors import SimulationInputError

__all__ = [
    "DETECTORS",
    "IMAGING_ELEMENTS",
    "SPECTRAL_ELEMENTS",
    "bandpass",
    "check_detector",
    "check_element",
    "throughput_table",
    "zeropoint_rate",
]


def check_element(name: str, *, imaging: bool = True) -> str:
    """Normalise and validate an optical element name (``f158`` -> ``F158``)."""
    norm = str(name).strip().upper()
    allowed = IMAGING_ELEMENTS if imaging else IMAGING_ELEMENTS + SPECTRAL_ELEMENTS
    if norm not in allowed:
        raise SimulationInputError(
            f"unknown optical element {name!r}; choose one of {', '.join(allowed)}"
        )
    return norm


def check_detector(detector: str | int) -> str:
    """``7``, ``'7'``, ``'wfi07'`` -> ``'WFI07'``; anything else is an input error."""
    text = str(detector).strip().upper().removeprefix("WFI").removeprefix("SCA")
    if not text.isdigit() or not 1 <= int(text) <= 18:
        raise SimulationInputError(f"unknown detector {detector!r}; use WFI01..WFI18 (or 1..18)")
    return f"WFI{int(text):02d}"


@cache
def bandpass(element: str):
    """The galsim bandpass (AB zeropoint set) of an optical element, from romanisim."""
    from romanisim.models import bandpass as rbp

    element = check_element(element, imaging=False)
    name = rbp.roman2galsim_bandpass[element]
    return rbp.getBandpasses(AB_zeropoint=True, include_all_bands=True)[name]


def zeropoint_rate(element: str, detector: str | int) -> float:
    """Electrons per second on ``detector`` from a 1-maggie (0 AB mag) flat-spectrum source."""
    from romanisim.models import bandpass as rbp

    element = check_element(element)
    return float(rbp.get_abflux(element, int(check_detector(detector)[3:])))


def throughput_table(elements: tuple[str, ...] | None = None, n: int = 200):
    """Throughput curves of the given elements (default: all) as one astropy Table.

    Columns: ``element``, ``wavelength`` (nm), ``throughput`` (dimensionless).
    """
    from astropy.table import Table, vstack

    parts = []
    for element in elements or IMAGING_ELEMENTS + SPECTRAL_ELEMENTS:
        bp = bandpass(element)
        wave = np.linspace(bp.blue_limit, bp.red_limit, n)
        parts.append(Table({"element": [element] * n, "wavelength": wave, "throughput": bp(wave)}))
    out = vstack(parts)
    out["wavelength"].unit = "nm"
    return out
