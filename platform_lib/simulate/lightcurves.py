"""Time-variable sources: periodic variables, microlensing-like and supernova-like events.

Variability is carried by catalog columns (``var_kind`` plus its parameters, all times in
MJD and days), so a survey's variable scene is one table that travels to the Dask workers and
into every truth catalog. :func:`flux_factor` gives each source's flux relative to its
catalog flux at a time; :func:`catalog_at` returns the catalog a given exposure sees.
Variations are achromatic (the same factor in every optical element).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .bands import IMAGING_ELEMENTS
from .errors import SimulationInputError

KINDS = ("none", "periodic", "microlensing", "supernova")
VAR_COLUMNS = {
    "var_kind": "U12",
    "var_t0": "f8",
    "var_period": "f8",
    "var_amplitude": "f8",
    "var_u0": "f8",
    "var_te": "f8",
    "var_rise": "f8",
    "var_fall": "f8",
}


def periodic(t, *, t0: float, period: float, amplitude: float) -> np.ndarray:
    """Sinusoidal variable: ``amplitude`` in magnitudes (half peak-to-peak), period in days."""
    return 10 ** (-0.4 * amplitude * np.sin(2 * np.pi * (np.asarray(t) - t0) / period))


def microlensing(t, *, t0: float, u0: float, te: float) -> np.ndarray:
    """Point-source point-lens magnification (Paczyński): peak at t0, impact u0, Einstein time te."""
    u = np.sqrt(u0**2 + ((np.asarray(t) - t0) / te) ** 2)
    return (u**2 + 2) / (u * np.sqrt(u**2 + 4))


def supernova(t, *, t0: float, rise: float, fall: float) -> np.ndarray:
    """Bazin et al. (2009) rise/decline shape, normalised to 1 at its maximum.

    The catalog flux is the peak flux; before the explosion the source is (nearly) absent.
    """

    def shape(x):
        return np.exp(-x / fall) / (1 + np.exp(-x / rise))

    # maximum of the shape at x = rise * ln(fall / rise - 1) (for fall > rise)
    x_peak = rise * np.log(max(fall / rise - 1, 1e-12))
    return shape(np.asarray(t) - t0) / shape(x_peak) if fall > rise else shape(np.asarray(t) - t0)


def add_variability(catalog, source_ids: Sequence[int], kind: str, **params) -> None:
    """Mark ``source_ids`` of ``catalog`` as variable of ``kind`` with ``params`` (in place).

    periodic: t0, period, amplitude; microlensing: t0, u0, te; supernova: t0, rise, fall.
    """
    need = {
        "periodic": ("t0", "period", "amplitude"),
        "microlensing": ("t0", "u0", "te"),
        "supernova": ("t0", "rise", "fall"),
    }
    if kind not in need:
        raise SimulationInputError(f"unknown variability {kind!r}; choose one of {KINDS[1:]}")
    missing = [p for p in need[kind] if p not in params]
    extra = set(params) - set(need[kind])
    if missing or extra:
        raise SimulationInputError(
            f"{kind} needs exactly {need[kind]}; missing {missing}, unexpected {sorted(extra)}"
        )
    for key in ("period", "te", "rise", "fall"):
        if key in params and float(params[key]) <= 0:
            raise SimulationInputError(f"{key} must be > 0 days")
    if kind == "microlensing" and float(params["u0"]) <= 0:
        raise SimulationInputError("u0 must be > 0")
    for col, dtype in VAR_COLUMNS.items():
        if col not in catalog.colnames:
            catalog[col] = np.zeros(len(catalog), dtype=dtype)
            if col == "var_kind":
                catalog[col] = "none"
    rows = np.flatnonzero(np.isin(np.asarray(catalog["source_id"]), np.asarray(source_ids)))
    if rows.size != len(set(source_ids)):
        raise SimulationInputError("some source_ids are not in the catalog")
    catalog["var_kind"][rows] = kind
    for key, value in params.items():
        catalog[f"var_{key}"][rows] = float(value)


def flux_factor(catalog, mjd: float) -> np.ndarray:
    """Flux relative to the catalog flux of every source at time ``mjd``."""
    out = np.ones(len(catalog))
    if "var_kind" not in catalog.colnames:
        return out
    kind = np.asarray(catalog["var_kind"]).astype(str)
    col = {c: np.asarray(catalog[c], dtype=float) for c in VAR_COLUMNS if c != "var_kind"}
    for name, func, keys in (
        ("periodic", periodic, ("t0", "period", "amplitude")),
        ("microlensing", microlensing, ("t0", "u0", "te")),
        ("supernova", supernova, ("t0", "rise", "fall")),
    ):
        for i in np.flatnonzero(kind == name):
            out[i] = func(mjd, **{k: col[f"var_{k}"][i] for k in keys})
    return out


def catalog_at(catalog, mjd: float, elements: Sequence[str] = IMAGING_ELEMENTS):
    """A copy of ``catalog`` with fluxes scaled to time ``mjd`` (column ``flux_factor`` added)."""
    out = catalog.copy()
    factor = flux_factor(catalog, mjd)
    for e in elements:
        if e in out.colnames:
            out[e] = (np.asarray(out[e], dtype=float) * factor).astype(out[e].dtype)
    out["flux_factor"] = factor
    out.meta["mjd"] = float(mjd)
    return out
