"""Inputs vs outputs: match a truth (injected or simulated) catalog to a measured catalog.

The catalog step (platform_lib.catalogs, or romancal's source catalog) produces an astropy
Table; :func:`match_catalogs` pairs each input with its nearest output within a radius (on
the sky, or in pixels when both have x/y), and returns one row per input with the input
columns (``in_`` prefix), the matched output columns (``out_`` prefix), the separation and a
``recovered`` flag, so photometry, sizes and shapes can be compared column by column.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import SimulationInputError


def match_catalogs(
    inputs,
    outputs,
    *,
    radius: float = 0.2,
    by: str = "sky",
    input_cols: Sequence[str] = ("ra", "dec"),
    output_cols: Sequence[str] = ("ra", "dec"),
):
    """One row per input: ``in_*``, ``out_*`` (masked when unmatched), ``separation``, ``recovered``.

    ``by='sky'``: columns in degrees, ``radius`` in arcsec. ``by='pixel'``: columns in pixels
    (e.g. ``("x", "y")`` and ``("xcentroid", "ycentroid")``), ``radius`` in pixels. An output
    is used at most once (the closest input wins).
    """
    from astropy.table import MaskedColumn, Table

    for table, cols, what in ((inputs, input_cols, "inputs"), (outputs, output_cols, "outputs")):
        missing = [c for c in cols if c not in table.colnames]
        if missing:
            raise SimulationInputError(f"{what} catalog lacks column(s) {missing}")
    if by not in ("sky", "pixel"):
        raise SimulationInputError("by must be 'sky' or 'pixel'")
    n_in = len(inputs)
    idx = np.full(n_in, -1)
    sep = np.full(n_in, np.inf)
    if n_in and len(outputs):
        a = [np.asarray(inputs[c], dtype=float) for c in input_cols]
        b = [np.asarray(outputs[c], dtype=float) for c in output_cols]
        if by == "sky":
            from astropy.coordinates import SkyCoord

            ci = SkyCoord(a[0], a[1], unit="deg")
            co = SkyCoord(b[0], b[1], unit="deg")
            j, d2d, _ = ci.match_to_catalog_sky(co)
            dist = d2d.arcsec
        else:
            from scipy.spatial import cKDTree

            dist, j = cKDTree(np.column_stack(b)).query(np.column_stack(a))
        order = np.argsort(dist)
        used: set[int] = set()
        for i in order:
            if dist[i] <= radius and int(j[i]) not in used:
                idx[i], sep[i] = int(j[i]), float(dist[i])
                used.add(int(j[i]))
    out = Table()
    for c in inputs.colnames:
        out[f"in_{c}"] = inputs[c]
    matched = idx >= 0
    for c in outputs.colnames:
        col = np.asarray(outputs[c])
        values = col[np.where(matched, idx, 0)] if len(col) else np.zeros(n_in, dtype=col.dtype)
        out[f"out_{c}"] = MaskedColumn(values, mask=~matched)
    out["separation"] = MaskedColumn(sep, mask=~matched)
    out["recovered"] = matched
    out.meta["match"] = {
        "by": by,
        "radius": radius,
        "completeness": float(matched.mean()) if n_in else float("nan"),
    }
    return out
