"""Photometry-based variability: forced photometry of static sources on every image, light
curves in a sky-partitioned Parquet store, and variability indices per source.

Storage decision (measured in benchmarks/catalogs/, argued in docs/catalogs.md): a Parquet
dataset partitioned by HEALPix pixel (nested, order 6 by default: 0.84 deg cells, about one
Roman field of view) in the data store. It needs no server, scales by adding files, is read by
pyarrow/dask/LSDB-style tools, and a cone query reads only the few partitions the cone touches.
Rows are appended as new files per (partition, batch), so concurrent Dask tasks never write the
same file and a rerun of a batch is idempotent (the batch id is in the file name).

Superseded for queries (issue 17, benchmarks/catalogs/bench_lightcurve_hats.py): the same rows as
a HATS collection answer a star, a cone and the full-field indices 1.5-50x faster in 5x less
disk, so the store moves to HATS (these per-image files kept as the ingest stage); until that
migration lands this store is still what ``build_lightcurves`` and the CLI write and read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Latitude, Longitude
from astropy.table import Table, vstack
from astropy_healpix import HEALPix

from .._parquet import astropy_table, table_bytes
from .detection import psf_fwhm_pixels
from .errors import CatalogInputError
from .images import CatalogImage
from .photometry import aperture_fluxes

DEFAULT_ORDER = 6
LIGHTCURVE_COLUMNS = ("source_id", "ra", "dec", "image_id", "band", "mjd", "flux", "flux_err")


def _healpix(order: int) -> HEALPix:
    return HEALPix(nside=2**order, order="nested")


def forced_photometry(sources: Table, image: CatalogImage, image_id: str) -> Table:
    """Point-source flux (uJy) of every static source that falls on ``image``.

    A circular aperture of 1.5 x the image PSF FWHM, corrected to total with the PSF's
    encircled energy, so images of different PSF give comparable fluxes of the same star.
    """
    if image.psf is None:
        raise CatalogInputError(f"{image_id}: forced photometry needs the image PSF")
    psf = image.psf
    for col in ("source_id", "ra", "dec"):
        if col not in sources.colnames:
            raise CatalogInputError(f"static catalog has no {col!r} column")
    ra = np.asarray(u.Quantity(sources["ra"], u.deg).value)
    dec = np.asarray(u.Quantity(sources["dec"], u.deg).value)
    x, y = image.world_to_pixel(ra, dec)
    ny, nx = image.shape
    r = 1.5 * (psf_fwhm_pixels(psf) or 2.0)
    on = (x >= r) & (y >= r) & (x <= nx - 1 - r) & (y <= ny - 1 - r)
    from .detection import estimate_background

    bkg, _ = estimate_background(image.data, image.mask)
    sub = np.where(image.mask, 0.0, image.data - bkg)
    f, e = aperture_fluxes(sub, image.err, image.mask, x[on], y[on], r)
    pny, pnx = psf.shape
    ee, _ = aperture_fluxes(
        psf,
        np.ones_like(psf),
        np.zeros(psf.shape, bool),
        np.array([(pnx - 1) / 2.0]),
        np.array([(pny - 1) / 2.0]),
        r,
    )
    k = image.to_ujy / ee[0]
    out = Table()
    out["source_id"] = np.asarray(sources["source_id"])[on]
    out["ra"] = ra[on]
    out["dec"] = dec[on]
    out["image_id"] = np.full(on.sum(), image_id)
    out["band"] = np.full(on.sum(), image.band)
    out["flux_unit"] = np.full(on.sum(), image.flux_unit)  # uJy, or DN/s for uncalibrated images
    out["mjd"] = np.full(on.sum(), np.nan if image.mjd is None else float(image.mjd))
    out["flux"] = f * k
    out["flux_err"] = e * k
    good = np.isfinite(out["flux"]) & np.isfinite(out["flux_err"]) & (out["flux_err"] > 0)
    return out[good]


INDEX_COLUMNS = (
    "source_id",
    "band",
    "flux_unit",
    "ra",
    "dec",
    "n_epochs",
    "mean_flux",
    "chi2_red",
    "stetson_j",
    "iqr_norm",
)


def _group_quantile(
    values_sorted: np.ndarray, starts: np.ndarray, n: np.ndarray, q: float
) -> np.ndarray:
    """np.percentile's linear interpolation, per group of an array sorted within groups."""
    pos = starts + q * (n - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, starts + n - 1)
    frac = pos - lo
    return values_sorted[lo] * (1 - frac) + values_sorted[hi] * frac


def variability_indices(lightcurves: Table) -> Table:
    """Per source, band and flux unit: n, weighted mean flux, reduced chi-square about it,
    Stetson J, and the normalised inter-quartile range (IQR / median flux).

    Measurements in different units (calibrated µJy and uncalibrated DN/s images of one band)
    are never combined into one light curve: they form separate rows. Rows without a
    ``flux_unit`` column are taken as µJy.

    Vectorised over groups (one sort, then ``reduceat``/``bincount``): a partition of a survey
    holds tens of thousands of sources, and a Python loop per source made recomputing the
    indices the slowest step of the light-curve store (benchmarks/catalogs/).
    """
    if len(lightcurves) == 0:
        return Table(names=INDEX_COLUMNS)
    sid = np.asarray(lightcurves["source_id"])
    band = np.asarray(lightcurves["band"]).astype(str)
    if "flux_unit" in lightcurves.colnames:
        unit = np.asarray(lightcurves["flux_unit"]).astype(str)
    else:
        unit = np.full(len(lightcurves), "uJy")
    f_all = np.asarray(lightcurves["flux"], float)
    e_all = np.asarray(lightcurves["flux_err"], float)
    mjd_all = np.asarray(lightcurves["mjd"], float)
    _, bcode = np.unique(np.char.add(np.char.add(band, "|"), unit), return_inverse=True)
    _, gid = np.unique(
        np.column_stack([sid.astype(np.int64), bcode.ravel()]), axis=0, return_inverse=True
    )
    gid = gid.ravel()
    order = np.lexsort((mjd_all, gid))  # by group, then time (Stetson pairs consecutive epochs)
    g, f, e = gid[order], f_all[order], e_all[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    n = np.diff(np.r_[starts, len(g)])
    w = 1.0 / e**2
    mean = np.add.reduceat(w * f, starts) / np.add.reduceat(w, starts)
    resid = f - mean[g]
    chi2 = np.add.reduceat(resid**2 * w, starts) / np.maximum(n - 1, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = np.sqrt(n / np.maximum(n - 1, 1))[g] * resid / e
    p = delta[:-1] * delta[1:]
    same = g[:-1] == g[1:]
    # Stetson (1996) J with consecutive observations paired (single-band light curve).
    j = np.bincount(g[:-1][same], weights=(np.sign(p) * np.sqrt(np.abs(p)))[same], minlength=len(n))
    j = np.where(n >= 2, j / np.maximum(n - 1, 1), 0.0)
    fo = np.lexsort((f_all, gid))
    fs = f_all[fo]
    q75, q25, med = (_group_quantile(fs, starts, n, q) for q in (0.75, 0.25, 0.5))
    with np.errstate(invalid="ignore", divide="ignore"):
        iqr = np.where(med > 0, (q75 - q25) / med, np.nan)
    ra = np.add.reduceat(np.asarray(lightcurves["ra"], float)[order], starts) / n
    dec = np.add.reduceat(np.asarray(lightcurves["dec"], float)[order], starts) / n
    first = order[starts]
    return Table(
        [sid[first], band[first], unit[first], ra, dec, n, mean, chi2, j, iqr], names=INDEX_COLUMNS
    )


class LightCurveStore:
    """Light curves and indices in a HEALPix-partitioned Parquet dataset at ``url``."""

    def __init__(
        self,
        url: str,
        *,
        order: int = DEFAULT_ORDER,
        storage_options: Mapping[str, Any] | None = None,
    ):
        import fsspec

        self.url = url.rstrip("/")
        self.order = order
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        self.hp = _healpix(order)

    def _pixels(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        return np.asarray(self.hp.lonlat_to_healpix(Longitude(ra * u.deg), Latitude(dec * u.deg)))

    def _write(self, kind: str, table: Table, batch_id: str) -> int:
        if len(table) == 0:
            return 0
        pix = self._pixels(np.asarray(table["ra"], float), np.asarray(table["dec"], float))
        written = 0
        for p in np.unique(pix):
            part = table[pix == p]
            folder = f"{self.root}/{kind}/order={self.order}/hpx={int(p)}"
            self.fs.makedirs(folder, exist_ok=True)
            tmp = f"{folder}/.{batch_id}.tmp"
            with self.fs.open(tmp, "wb") as fh:
                fh.write(table_bytes(part))
            self.fs.mv(tmp, f"{folder}/{batch_id}.parquet")  # same name on rerun: idempotent
            written += len(part)
        return written

    def append_lightcurves(self, rows: Table, batch_id: str) -> int:
        """Add forced-photometry rows (one batch = one image, typically)."""
        missing = [c for c in LIGHTCURVE_COLUMNS if c not in rows.colnames]
        if missing:
            raise CatalogInputError(f"light-curve rows lack columns {missing}")
        return self._write("lightcurves", rows, batch_id)

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

    def lightcurves(
        self, ra: float | None = None, dec: float | None = None, radius_arcsec: float | None = None
    ) -> Table:
        """All rows, or those of sources within a cone (only touched partitions are read)."""
        if ra is None:
            return self._read("lightcurves")
        return self._cone("lightcurves", ra, dec, radius_arcsec)

    def _cone(self, kind: str, ra: float, dec: float | None, radius_arcsec: float | None) -> Table:
        if dec is None or radius_arcsec is None:
            raise CatalogInputError("a cone needs ra, dec and radius_arcsec")
        pix = self.hp.cone_search_lonlat(
            Longitude(ra * u.deg), Latitude(dec * u.deg), radius_arcsec * u.arcsec
        )
        t = self._read(kind, np.asarray(pix))
        if len(t) == 0:
            return t
        from astropy.coordinates import SkyCoord

        sep = SkyCoord(t["ra"], t["dec"], unit="deg").separation(SkyCoord(ra, dec, unit="deg"))
        return t[sep.arcsec <= radius_arcsec]

    def update_indices(self, batch_id: str = "indices") -> Table:
        """Recompute the variability indices of every partition that has light curves."""
        base = f"{self.root}/lightcurves/order={self.order}"
        out = []
        for folder in self.fs.glob(f"{base}/hpx=*"):
            p = int(folder.rsplit("=", 1)[1])
            idx = variability_indices(self._read("lightcurves", [p]))
            ifolder = f"{self.root}/indices/order={self.order}/hpx={p}"
            if self.fs.exists(ifolder):
                self.fs.rm(ifolder, recursive=True)
            self._write("indices", idx, batch_id)
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
        """Variability indices, optionally in a cone and above index thresholds."""
        t = self._read("indices") if ra is None else self._cone("indices", ra, dec, radius_arcsec)
        if len(t) == 0:
            return t
        keep = np.ones(len(t), bool)
        if min_chi2 is not None:
            keep &= np.asarray(t["chi2_red"]) >= min_chi2
        if min_stetson_j is not None:
            keep &= np.asarray(t["stetson_j"]) >= min_stetson_j
        return t[keep]


def build_lightcurves(
    sources: Table,
    images: list[tuple[str, Any]],
    store: LightCurveStore,
    *,
    client: Any | None = None,
) -> Table:
    """Forced photometry of ``sources`` on every image, one Dask task per image.

    ``images`` holds (image_id, loader) pairs; a loader is a zero-argument callable returning a
    ``CatalogImage`` (so the pixels are read on the worker, not shipped from the client).
    Failed images are reported in the returned table's meta without stopping the others.
    """
    from platform_lib.compute import get_client, map_with_progress

    def task(item: tuple[str, Any]) -> int:
        image_id, loader = item
        rows = forced_photometry(sources, loader(), image_id)
        return store.append_lightcurves(rows, batch_id=image_id)

    if client is None:
        with get_client() as c:
            results = map_with_progress(c, task, images, desc="forced photometry")
    else:
        results = map_with_progress(client, task, images, desc="forced photometry")
    failures = {
        img_id: repr(r) for (img_id, _), r in zip(images, results) if isinstance(r, BaseException)
    }
    indices = store.update_indices()
    indices.meta["failed_images"] = failures
    indices.meta["rows_written"] = int(sum(r for r in results if isinstance(r, int)))
    return indices
