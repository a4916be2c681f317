"""Product index rows → IVOA ObsCore rows (what the platform's TAP service serves).

One mapping, used by the TAP service that publishes the index and by the L5 registry: the
ObsCore columns (``calib_level``, ``dataproduct_type``, ``s_region`` as a pgSphere polygon,
``t_min``/``t_max`` in MJD, ``em_min``/``em_max`` in metres, ``access_url`` into the store) plus
the platform's own (``roman_level``, ``optical_element``, ``detector``, ``product_path`` and the
L5 ``visibility``/``owner_name``/``team``/``licence``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..instrument import GALSIM_BANDS
from .footprint import parse_s_region

__all__ = ["BANDPASS_UM", "OBSCORE_COLUMNS", "obscore_row", "spoly", "CALIB_LEVEL"]

#: WFI optical elements → (min, max) wavelength in micrometres (Roman WFI technical summary)
BANDPASS_UM: dict[str, tuple[float, float]] = {
    "F062": (0.480, 0.760),
    "F087": (0.760, 0.977),
    "F106": (0.927, 1.192),
    "F129": (1.131, 1.454),
    "F158": (1.380, 1.774),
    "F184": (1.683, 2.000),
    "F213": (1.950, 2.300),
    "F146": (0.927, 2.000),
}
#: galsim.roman's band names for the same elements
_ALIASES = {galsim: roman for roman, galsim in GALSIM_BANDS.items() if galsim != roman}

#: platform level → ObsCore calib_level (1 instrumental, 2 calibrated, 3 combined, 4 analysis)
CALIB_LEVEL = {"L1": 1, "L2": 2, "L3": 3, "L4": 4, "L5": 4, "PSF": 2}

OBSCORE_COLUMNS = [
    "obs_publisher_did",
    "obs_id",
    "obs_collection",
    "dataproduct_type",
    "calib_level",
    "access_url",
    "access_format",
    "access_estsize",
    "s_ra",
    "s_dec",
    "s_fov",
    "s_region",
    "t_min",
    "t_max",
    "t_exptime",
    "em_min",
    "em_max",
    "facility_name",
    "instrument_name",
    "target_name",
    "roman_level",
    "optical_element",
    "detector",
    "product_path",
    "visibility",
    "owner_name",
    "team",
    "licence",
]

DID_BASE = "ivo://roman.platform/products"


def band(optical_element: Any) -> str | None:
    if not optical_element:
        return None
    name = str(optical_element).upper()
    return _ALIASES.get(name, name)


def spoly(corners: np.ndarray | None) -> str | None:
    """A pgSphere polygon literal (degrees) from (ra, dec) corners."""
    if corners is None or len(corners) < 3:
        return None
    return "{" + ",".join(f"({ra % 360.0:.9f}d,{dec:.9f}d)" for ra, dec in corners) + "}"


def _fov(corners: np.ndarray | None, ra: float | None, dec: float | None) -> float | None:
    if corners is None or ra is None or dec is None:
        return None
    r0, d0 = np.radians(ra), np.radians(dec)
    r, d = np.radians(corners[:, 0]), np.radians(corners[:, 1])
    cos = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(r - r0)
    return float(2 * np.degrees(np.arccos(np.clip(cos, -1, 1))).max())


def _dataproduct_type(level: str | None, product_type: str | None) -> str:
    kind = str(product_type or "")
    if "catalog" in kind:
        return "measurements"
    if level == "L1":
        return "cube"  # ramps: resultants × pixels
    return "image"


def obscore_row(row: dict[str, Any], access_url: str, **extra: Any) -> dict[str, Any]:
    """The ObsCore row of one index row (a dict as ``load_index(...).to_pylist()`` gives)."""
    path = row["path"]
    level = row.get("level")
    corners = parse_s_region(row.get("s_region") or "")
    oe = band(row.get("optical_element"))
    em = BANDPASS_UM.get(oe or "")
    t_min = row.get("start_mjd")
    exptime = row.get("exposure_time")
    t_max = t_min + exptime / 86400.0 if t_min is not None and exptime is not None else t_min
    name = path.rsplit("/", 1)[-1]
    if "://" not in access_url:  # a local-folder store: a file URL (a bare path is no URL)
        from pathlib import Path

        access_url = Path(access_url).resolve().as_uri()
    out = {
        "obs_publisher_did": f"{DID_BASE}?{path}",
        "obs_id": row.get("observation_id") or name.split(".", 1)[0],
        "obs_collection": "ROMAN",
        "dataproduct_type": _dataproduct_type(level, row.get("product_type")),
        "calib_level": CALIB_LEVEL.get(str(level), 2),
        "access_url": access_url,
        "access_format": (
            "application/x-parquet" if path.endswith(".parquet") else "application/x-asdf"
        ),
        "access_estsize": int(row["size"] / 1024) if row.get("size") else None,
        "s_ra": row.get("ra_center"),
        "s_dec": row.get("dec_center"),
        "s_fov": _fov(corners, row.get("ra_center"), row.get("dec_center")),
        "s_region": spoly(corners),
        "t_min": t_min,
        "t_max": t_max,
        "t_exptime": exptime,
        "em_min": em[0] * 1e-6 if em else None,
        "em_max": em[1] * 1e-6 if em else None,
        "facility_name": "Roman",
        "instrument_name": "WFI",
        "target_name": None,
        "roman_level": level,
        "optical_element": oe,
        "detector": row.get("detector"),
        "product_path": path,
        "visibility": "public",
        "owner_name": None,
        "team": None,
        "licence": None,
    }
    out.update(extra)
    return out
