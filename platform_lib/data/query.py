"""Parsing of search arguments (cones, polygons, times, one-or-many values).

One home for what both the product index (:mod:`platform_lib.data.search`) and the MAST
adapter (:mod:`platform_lib.data.mast`) accept, so that a cone or a list of optical elements
means the same thing to both; neither imports the other for it.
"""

from __future__ import annotations

from typing import Any, overload

import numpy as np

__all__ = ["as_list", "cone_args", "polygon_args", "to_mjd"]


@overload
def as_list(value: None) -> None: ...
@overload
def as_list(value: Any) -> list: ...
def as_list(value: Any) -> list | None:
    """None stays None, a string becomes a one-item list, any other iterable a list."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return list(value)


def to_mjd(value: Any) -> float:
    """A time (ISO string, ``astropy.time.Time``, datetime) as a Modified Julian Date."""
    from astropy.time import Time

    return float(Time(value).mjd)


def cone_args(cone: Any) -> tuple[float, float, float]:
    """(SkyCoord, radius) or (ra, dec, radius) with radius a Quantity/Angle or degrees."""
    import astropy.units as u

    if len(cone) == 2:
        coord, radius = cone
        coord = coord.icrs
        ra, dec = coord.ra.deg, coord.dec.deg
    elif len(cone) == 3:
        ra, dec, radius = cone
    else:
        raise ValueError("cone must be (SkyCoord, radius) or (ra_deg, dec_deg, radius)")
    radius_deg = radius.to_value(u.deg) if hasattr(radius, "to_value") else float(radius)
    if radius_deg <= 0:
        raise ValueError("cone radius must be positive")
    return float(ra), float(dec), float(radius_deg)


def polygon_args(polygon: Any) -> np.ndarray:
    """(N, 2) vertices in degrees from a SkyCoord or a sequence of (ra, dec) pairs."""
    if hasattr(polygon, "ra") and hasattr(polygon, "dec"):
        verts = np.stack([polygon.icrs.ra.deg, polygon.icrs.dec.deg], axis=-1)
    else:
        verts = np.asarray(polygon, dtype=float)
    if verts.ndim != 2 or verts.shape[1] != 2 or len(verts) < 3:
        raise ValueError("polygon must be at least 3 (ra, dec) vertices in degrees, or a SkyCoord")
    return verts
