"""The retired per-cell light-curve reader, kept only as the baseline of the store benchmarks.

Issue 17 replaced it: ``platform_lib.catalogs.variability.LightCurveStore`` now reads its light
curves and indices from HATS collections through LSDB, and its per-image files are only the
ingest stage. ``bench_lightcurve_store.py`` (Parquet vs PostgreSQL) and
``bench_lightcurve_hats.py`` (this layout vs HATS, the measurement that decided the migration)
still time the old layout's queries, so that reader lives here, with the same ingest files:
every query reads all files of the order-6 cells it touches, and the indices are recomputed and
written per cell (``indices/order=6/hpx=<pixel>/indices.parquet``).
"""

from __future__ import annotations

from collections.abc import Iterable

import astropy.units as u
import numpy as np
from astropy.coordinates import Latitude, Longitude, SkyCoord
from astropy.table import Table, vstack

from platform_lib._parquet import astropy_table, table_bytes
from platform_lib.catalogs.errors import CatalogInputError
from platform_lib.catalogs.variability import LightCurveStore, variability_indices


class OwnLightCurveStore(LightCurveStore):
    """The ingest files read per HEALPix cell: the layout HATS replaced (benchmark baseline)."""

    def _read(self, kind: str, pixels: Iterable[int] | None = None) -> Table:
        base = f"{self.root}/{kind}/order={self.order}"
        if pixels is None:
            files = self.fs.glob(f"{base}/hpx=*/*.parquet")
        else:
            files = [f for p in pixels for f in self.fs.glob(f"{base}/hpx={int(p)}/*.parquet")]
        tables = []
        for f in files:
            with self.fs.open(f, "rb") as fh:
                tables.append(astropy_table(fh.read()))
        return vstack(tables) if tables else Table()

    def _cell_cone(
        self, kind: str, ra: float, dec: float | None, radius_arcsec: float | None
    ) -> Table:
        if dec is None or radius_arcsec is None:
            raise CatalogInputError("a cone needs ra, dec and radius_arcsec")
        pix = self.hp.cone_search_lonlat(
            Longitude(ra * u.deg), Latitude(dec * u.deg), radius_arcsec * u.arcsec
        )
        t = self._read(kind, np.asarray(pix))
        if len(t) == 0:
            return t
        sep = SkyCoord(t["ra"], t["dec"], unit="deg").separation(SkyCoord(ra, dec, unit="deg"))
        return t[sep.arcsec <= radius_arcsec]

    def lightcurves(
        self, ra: float | None = None, dec: float | None = None, radius_arcsec: float | None = None
    ) -> Table:
        if ra is None:
            return self._read("lightcurves")
        return self._cell_cone("lightcurves", ra, dec, radius_arcsec)

    def update_indices(self) -> Table:
        """Recompute and write the indices of every cell that has light curves."""
        out = []
        for folder in self.fs.glob(f"{self.root}/lightcurves/order={self.order}/hpx=*"):
            p = int(folder.rsplit("=", 1)[1])
            idx = variability_indices(self._read("lightcurves", [p]))
            ifolder = f"{self.root}/indices/order={self.order}/hpx={p}"
            if self.fs.exists(ifolder):
                self.fs.rm(ifolder, recursive=True)
            if len(idx):
                self.fs.makedirs(ifolder, exist_ok=True)
                with self.fs.open(f"{ifolder}/indices.parquet", "wb") as fh:
                    fh.write(table_bytes(idx))
            out.append(idx)
        return vstack(out) if out else Table()

    def indices(
        self,
        *,
        ra: float | None = None,
        dec: float | None = None,
        radius_arcsec: float | None = None,
        min_chi2: float | None = None,
        min_stetson_j: float | None = None,
    ) -> Table:
        t = (
            self._read("indices")
            if ra is None
            else self._cell_cone("indices", ra, dec, radius_arcsec)
        )
        if len(t) == 0:
            return t
        keep = np.ones(len(t), bool)
        if min_chi2 is not None:
            keep &= np.asarray(t["chi2_red"]) >= min_chi2
        if min_stetson_j is not None:
            keep &= np.asarray(t["stetson_j"]) >= min_stetson_j
        return t[keep]
