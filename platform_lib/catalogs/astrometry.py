"""Tie catalog positions to an absolute reference catalog (Gaia-like, read from the data store).

The L4 astrometry is aligned to Gaia (the seed). On the platform the reference is a file in the
data store (an astropy-readable table with ``ra``, ``dec`` in degrees), since no archive service
is reachable from every deployment. Bright point sources are matched to it and a linear
transform on the tangent plane (shift only when few matches) is fitted with sigma clipping and
applied to every position; the residual rms goes into the table's metadata.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord, SkyOffsetFrame
from astropy.table import QTable, Table

from .errors import CatalogInputError


@dataclass(frozen=True)
class AlignmentResult:
    n_matched: int
    n_used: int
    rms_before_mas: float
    rms_after_mas: float
    model: str  # "affine" or "shift"


def read_reference(path_or_table: str | Table, storage_options: dict | None = None) -> Table:
    """A reference catalog from a path/URL in the store (any astropy-readable format) or a Table."""
    if isinstance(path_or_table, Table):
        ref = path_or_table
    else:
        import fsspec

        from .._parquet import astropy_table

        name = str(path_or_table)
        with fsspec.open(name, "rb", **(storage_options or {})) as fh:
            data = fh.read()
        if name.endswith(".parquet"):
            ref = astropy_table(data)
        elif name.endswith(".ecsv"):
            ref = Table.read(data.decode(), format="ascii.ecsv")
        else:
            ref = Table.read(io.BytesIO(data), format="fits")
    for col in ("ra", "dec"):
        if col not in ref.colnames:
            raise CatalogInputError(
                f"reference catalog has no {col!r} column (has: {', '.join(ref.colnames)})"
            )
    return ref


def _tangent(coords: SkyCoord, centre: SkyCoord) -> np.ndarray:
    off = coords.transform_to(SkyOffsetFrame(origin=centre))
    return np.column_stack([off.lon.to_value(u.mas), off.lat.to_value(u.mas)])


def align_to_reference(
    table: QTable,
    reference: Table,
    *,
    match_radius_arcsec: float = 0.5,
    min_snr: float = 20.0,
    clip_sigma: float = 3.0,
    max_iter: int = 5,
) -> AlignmentResult:
    """Correct ``table['ra'/'dec']`` in place; returns the fit statistics (also in table.meta)."""
    if len(table) == 0:
        raise CatalogInputError("cannot align an empty catalog")
    sel = np.asarray(table["snr"]) >= min_snr
    if "is_star" in table.colnames:
        sel &= np.asarray(table["is_star"], dtype=bool)
    if "flag_edge" in table.colnames:
        sel &= ~np.asarray(table["flag_edge"], dtype=bool)
    cat = SkyCoord(table["ra"], table["dec"])
    ref = SkyCoord(
        np.asarray(reference["ra"], float) * u.deg, np.asarray(reference["dec"], float) * u.deg
    )
    idx, sep, _ = cat.match_to_catalog_sky(ref)
    matched = sel & (sep.arcsec < match_radius_arcsec)
    n_matched = int(matched.sum())
    if n_matched < 3:
        raise CatalogInputError(
            f"only {n_matched} bright point sources match the reference catalog within "
            f"{match_radius_arcsec} arcsec; at least 3 are needed to align"
        )
    centre = SkyCoord(np.median(table["ra"]), np.median(table["dec"]))
    xy = _tangent(cat, centre)
    xy_ref = _tangent(ref[idx], centre)
    use = matched.copy()
    model = "affine" if n_matched >= 6 else "shift"
    params = np.zeros((3, 2))
    params[1, 0] = params[2, 1] = 1.0
    for _ in range(max_iter):
        a = xy[use]
        b = xy_ref[use]
        if model == "affine":
            design = np.column_stack([np.ones(len(a)), a])
            params, *_ = np.linalg.lstsq(design, b, rcond=None)
        else:
            params = np.zeros((3, 2))
            params[1, 0] = params[2, 1] = 1.0
            params[0] = np.median(b - a, axis=0)
        resid = np.column_stack([np.ones(len(xy)), xy]) @ params - xy_ref
        r = np.hypot(resid[:, 0], resid[:, 1])
        sigma = np.sqrt(np.mean(r[use] ** 2) / 2)
        new_use = matched & (r < clip_sigma * max(sigma, 1e-3) * np.sqrt(2))
        if new_use.sum() < 3 or (new_use == use).all():
            break
        use = new_use
    before = xy[use] - xy_ref[use]
    fitted = np.column_stack([np.ones(len(xy)), xy]) @ params
    after = fitted[use] - xy_ref[use]
    corrected = SkyOffsetFrame(lon=fitted[:, 0] * u.mas, lat=fitted[:, 1] * u.mas, origin=centre)
    icrs = SkyCoord(corrected).icrs
    table["ra"] = icrs.ra.to(u.deg)
    table["dec"] = icrs.dec.to(u.deg)
    result = AlignmentResult(
        n_matched=n_matched,
        n_used=int(use.sum()),
        rms_before_mas=float(np.sqrt(np.mean(np.sum(before**2, axis=1)))),
        rms_after_mas=float(np.sqrt(np.mean(np.sum(after**2, axis=1)))),
        model=model,
    )
    table.meta["astrometry"] = result.__dict__.copy()
    return result
