"""A thin adapter over ``astroquery.mast`` for Roman products in the MAST archive.

It asks MAST's CAOM services for Roman observations in a cone (``Observations.query_criteria``
with ``obs_collection``), lists their products (``get_product_list``), and returns them as rows
with the same columns as :func:`platform_lib.data.search` (``source='mast'``; ``path`` is the
product's ``dataURI``), so archive products and staged products sit in one table.
``download`` fetches one through astroquery. ``server`` points astroquery at another MAST
endpoint (a mirror, or a test server); astroquery otherwise uses its configured server.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from .query import as_list, cone_args

__all__ = ["MastArchive", "ROMAN_COLLECTION"]

ROMAN_COLLECTION = "ROMAN"
_DETECTOR = re.compile(r"_(wfi\d\d)_", re.IGNORECASE)


def _masked(value: Any) -> bool:
    return value is None or value is np.ma.masked or (isinstance(value, float) and np.isnan(value))


class MastArchive:
    """Roman products in MAST, through astroquery (one instance per server)."""

    def __init__(
        self, server: str | None = None, collection: str = ROMAN_COLLECTION, timeout: float = 60.0
    ) -> None:
        from astroquery.mast import ObservationsClass

        self.collection = collection
        self.observations = ObservationsClass()
        portal = self.observations._portal_api_connection
        portal.TIMEOUT = timeout
        if server:
            server = server.rstrip("/")
            portal.MAST_REQUEST_URL = server + "/api/v0/invoke"
            portal.COLUMNS_CONFIG_URL = server + "/portal/Mashup/Mashup.asmx/columnsconfig"
            portal.MAST_DOWNLOAD_URL = server + "/api/v0.1/Download/file"
            portal.MAST_BUNDLE_URL = server + "/api/v0.1/Download/bundle"
            # astroquery caches column configurations per class: do not mix servers
            portal._column_configs = {}
        self.server = server

    def query_observations(self, cone: Any, *, optical_element: Any = None, level: Any = None):
        """MAST observations (CAOM rows) of the collection in the cone."""
        import warnings

        from astroquery.exceptions import NoResultsWarning

        ra, dec, radius = cone_args(cone)
        from astropy.coordinates import SkyCoord

        criteria: dict[str, Any] = {
            "coordinates": SkyCoord(ra, dec, unit="deg"),
            "radius": f"{radius} deg",
            "obs_collection": self.collection,
        }
        if optical_element is not None:
            criteria["filters"] = [str(o).upper() for o in as_list(optical_element)]
        if level is not None:
            levels = [
                int(str(lv).upper().lstrip("L"))
                for lv in as_list(level)
                if str(lv).upper().lstrip("L").isdigit()
            ]
            criteria["calib_level"] = levels
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoResultsWarning)
            return self.observations.query_criteria(**criteria)

    def search(
        self,
        cone: Any,
        *,
        optical_element: Any = None,
        level: Any = None,
        suffixes: tuple[str, ...] = (".asdf",),
    ):
        """Products of the matching observations, as rows shaped like ``data.search``'s."""
        import warnings

        from astropy.table import Table
        from astropy.time import Time
        from astroquery.exceptions import NoResultsWarning

        obs = self.query_observations(cone, optical_element=optical_element, level=level)
        columns = [
            "path",
            "size",
            "level",
            "product_type",
            "program",
            "observation_id",
            "detector",
            "optical_element",
            "start_time",
            "start_mjd",
            "exposure_time",
            "ra_center",
            "dec_center",
            "s_region",
            "source",
        ]
        if obs is None or len(obs) == 0:
            return Table(
                names=columns,
                dtype=[
                    str,
                    int,
                    str,
                    str,
                    int,
                    str,
                    str,
                    str,
                    str,
                    float,
                    float,
                    float,
                    float,
                    str,
                    str,
                ],
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoResultsWarning)
            products = self.observations.get_product_list(obs)
        by_obsid = {str(r["obsid"]): r for r in obs}
        rows = []
        for p in products:
            name = str(p["productFilename"])
            if suffixes and not name.lower().endswith(suffixes):
                continue
            o = by_obsid.get(str(p["obsID"]))
            if o is None:
                continue
            level_value = p["calib_level"] if "calib_level" in p.colnames else o["calib_level"]
            t_min = None if _masked(o["t_min"]) else float(o["t_min"])
            det = _DETECTOR.search(name)
            rows.append(
                {
                    "path": str(p["dataURI"]),
                    "size": -1 if _masked(p["size"]) else int(p["size"]),
                    "level": None if _masked(level_value) else f"L{int(level_value)}",
                    "product_type": str(p["productSubGroupDescription"])
                    if "productSubGroupDescription" in p.colnames
                    else "",
                    "program": -1
                    if _masked(o["proposal_id"]) or not str(o["proposal_id"]).isdigit()
                    else int(o["proposal_id"]),
                    "observation_id": str(o["obs_id"]),
                    "detector": det.group(1).upper() if det else "",
                    "optical_element": str(o["filters"]).upper(),
                    "start_time": Time(t_min, format="mjd").isot if t_min is not None else "",
                    "start_mjd": np.nan if t_min is None else t_min,
                    "exposure_time": np.nan if _masked(o["t_exptime"]) else float(o["t_exptime"]),
                    "ra_center": float(o["s_ra"]),
                    "dec_center": float(o["s_dec"]),
                    "s_region": str(o["s_region"]),
                    "source": "mast",
                }
            )
        table = Table(rows=rows, names=columns) if rows else Table(names=columns)
        table.meta["mast_server"] = self.server or "astroquery default"
        return table

    def download(self, row: Any, destination: str | Path = ".") -> Path:
        """Download one MAST product (a row from :meth:`search`, or a dataURI)."""
        uri = str(row["path"]) if hasattr(row, "colnames") or isinstance(row, dict) else str(row)
        dest = Path(destination)
        if dest.is_dir() or not dest.suffix:
            dest.mkdir(parents=True, exist_ok=True)
            dest = dest / Path(uri).name
        status, msg, _ = self.observations.download_file(
            uri, local_path=str(dest), cache=False, verbose=False
        )
        if status != "COMPLETE":
            raise RuntimeError(f"MAST download of {uri} failed: {status} {msg or ''}".strip())
        return dest
