"""Photometry-based variability: forced photometry of static sources on every image, light
curves and variability indices per source, served as HATS collections read with LSDB.

Storage (issue 17; measured in benchmarks/catalogs/bench_lightcurve_hats.py, argued in
docs/catalogs.md): two stages under the store's folder.

- Ingest: the Dask task of each image writes its rows as one Parquet file per (HEALPix order-6
  cell, image), ``lightcurves/order=6/hpx=<pixel>/<image id>.parquet``. Concurrent tasks never
  write one file and a rerun of an image replaces its file (idempotent); appending is cheap,
  which is the one thing this layout did better than HATS.
- Queries: after each batch :meth:`LightCurveStore.publish` rebuilds the HATS collections
  ``hats/lightcurves`` and ``hats/indices`` from the ingest files
  (:func:`platform_lib.data.hats.write_collection`), and every read (one source, a cone, the
  field's indices) is an LSDB query of them: in the same run HATS answered a star 48x and a cone
  30x faster than reading the ingest cells, the field's indices 1.5x, in 5x less disk.
  Each publication is a new version of each collection, switched to in one write once complete
  (:mod:`platform_lib.data.hats_versions`): a reader (a notebook, a Dask worker) opening one
  while the next batch is published reads the old version or the new, never a mix.

Results are astropy Tables with the ingest files' columns (fluxes in the unit named by the
``flux_unit`` column, ``mjd`` as float days), as the per-cell reader returned them.

A light curve by ``source_id`` alone reads the light curves' HATS index catalog (published in
each version, :mod:`platform_lib.data.hats_index`) and one partition, through LSDB's
``id_search``; a store published before the index is scanned (:meth:`LightCurveStore.lightcurve`).

Size: ~440 lines, kept together: forced photometry writes the rows the store ingests, the indices
are computed from them at publication, and the store reads them back; the columns
(``LIGHTCURVE_COLUMNS``, ``INDEX_COLUMNS``) are shared by all three.
"""

from __future__ import annotations

import contextlib
import io
import numbers
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
ID_INDEX = "source_id"  # the column the light curves' HATS index catalog is on
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


def _as_table(frame: Any, columns: Iterable[str] | None = None) -> Table:
    """An LSDB/pandas result as an astropy Table of plain numpy columns (strings as str), in
    the order of ``columns`` (default: the catalog's, i.e. the ingest files')."""
    cols = [c for c in (columns or frame.columns) if c in frame.columns]
    out = Table()
    for c in cols:
        values = np.asarray(frame[c].to_numpy())
        out[c] = values.astype(str) if values.dtype == object else values
    return out


def _source_id(value: Any) -> int:
    """A source id as a Python int; anything but an integer (bool, float, str) is refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise CatalogInputError(
            f"source_id must be an integer, not {type(value).__name__} {value!r}"
        )
    return int(value)


class LightCurveStore:
    """Light curves and indices at ``url``: per-image ingest files, published as HATS.

    An ``s3://`` URL without ``storage_options`` uses the environment's endpoint and key
    (``platform_lib.data.store.get_store``). ``append_lightcurves`` writes the ingest stage; ``publish`` makes the HATS collections
    (``build_lightcurves`` does both); ``lightcurve``, ``lightcurves`` and ``indices`` read the
    collections through LSDB. A store never published has nothing to read (a clear error).
    """

    def __init__(
        self,
        url: str,
        *,
        order: int = DEFAULT_ORDER,
        storage_options: Mapping[str, Any] | None = None,
        grace_seconds: float | None = None,
    ):
        import fsspec

        from platform_lib.data.hats_versions import DEFAULT_GRACE_SECONDS

        self.url = url.rstrip("/")
        self.order = order
        # how long a superseded version of a collection stays for readers that opened it
        self.grace_seconds = DEFAULT_GRACE_SECONDS if grace_seconds is None else grace_seconds
        if storage_options is None and self.url.startswith(("s3://", "s3a://")):
            from platform_lib.data.store import get_store

            storage_options = get_store(self.url).storage_options  # the environment's endpoint
        self.storage_options = dict(storage_options or {})
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        self._s3 = "s3" in np.atleast_1d(self.fs.protocol)
        self.hp = _healpix(order)

    @property
    def hats_url(self) -> str:
        """The folder holding the ``lightcurves`` and ``indices`` HATS collections."""
        return f"{self.url}/hats"

    def collection_url(self, kind: str = "lightcurves") -> str:
        """URL of one HATS collection (``lightcurves`` or ``indices``): ``lsdb.open_catalog``."""
        if kind not in ("lightcurves", "indices"):
            raise CatalogInputError(f"no collection {kind!r}: 'lightcurves' or 'indices'")
        return f"{self.hats_url}/{kind}"

    # ------------------------------------------------------------------ ingest stage
    def _pixels(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        return np.asarray(self.hp.lonlat_to_healpix(Longitude(ra * u.deg), Latitude(dec * u.deg)))

    def append_lightcurves(self, rows: Table, batch_id: str) -> int:
        """Add forced-photometry rows (one batch = one image, typically) to the ingest stage."""
        missing = [c for c in LIGHTCURVE_COLUMNS if c not in rows.colnames]
        if missing:
            raise CatalogInputError(f"light-curve rows lack columns {missing}")
        if len(rows) == 0:
            return 0
        pix = self._pixels(np.asarray(rows["ra"], float), np.asarray(rows["dec"], float))
        written = 0
        for p in np.unique(pix):
            part = rows[pix == p]
            folder = f"{self.root}/lightcurves/order={self.order}/hpx={int(p)}"
            if not self._s3:  # S3 has no folders, and a prefix-scoped key may not HEAD the bucket
                self.fs.makedirs(folder, exist_ok=True)
            tmp = f"{folder}/.{batch_id}.tmp"
            with self.fs.open(tmp, "wb") as fh:
                fh.write(table_bytes(part))
            self.fs.mv(tmp, f"{folder}/{batch_id}.parquet")  # same name on rerun: idempotent
            written += len(part)
        return written

    def ingested(self) -> Table:
        """Every row of the ingest stage (what :meth:`publish` turns into the collection)."""
        files = self.fs.glob(f"{self.root}/lightcurves/order={self.order}/hpx=*/*.parquet")
        tables = []
        for f in sorted(files):
            with self.fs.open(f, "rb") as fh:
                tables.append(astropy_table(fh.read()))
        return vstack(tables) if tables else Table()

    def publish(self) -> Table:
        """Rebuild the HATS collections from the ingest files; returns the indices.

        The light curves become ``hats/lightcurves``, their variability indices (one row per
        source, band and flux unit) ``hats/indices``. Each is written as a new version and
        switched to in one write (``write_collection``), so readers see one whole version of
        each collection; versions superseded for longer than ``grace_seconds`` (constructor)
        are removed. The light curves' version holds a HATS index catalog on ``source_id``
        (``lightcurves_source_id``, in ``all_indexes``), published with it in the same switch,
        which :meth:`lightcurve` uses. The two collections switch one after the other: a reader of both may meet
        the new light curves with the previous batch's indices for that moment.
        """
        from platform_lib.data.hats import write_collection

        rows = self.ingested()
        if len(rows) == 0:
            return Table(names=INDEX_COLUMNS)
        indices = variability_indices(rows)
        for kind, table, by_id in (
            ("lightcurves", rows, (ID_INDEX,)),
            ("indices", indices, ()),
        ):
            write_collection(
                table,
                self.hats_url,
                kind,
                storage_options=self.storage_options or None,
                grace_seconds=self.grace_seconds,
                index_columns=by_id,
            )
        return indices

    # ------------------------------------------------------------------ reads (LSDB)
    def catalog(self, kind: str = "lightcurves") -> Any:
        """The lazy ``lsdb.Catalog`` of a published collection (with its margin): its current
        version, which it keeps reading while newer ones are published (``open_catalog``)."""
        from platform_lib.data.hats import open_catalog

        url = self.collection_url(kind)
        if not self.fs.exists(f"{self.root}/hats/{kind}/collection.properties"):
            raise CatalogInputError(
                f"no published light curves at {url}: run build_lightcurves (or publish())"
            )
        return open_catalog(url, storage_options=self.storage_options or None)

    def lightcurves(
        self, ra: float | None = None, dec: float | None = None, radius_arcsec: float | None = None
    ) -> Table:
        """All rows, or those of sources within a cone (LSDB reads only the partitions it
        touches)."""
        cat = self.catalog("lightcurves")
        if ra is not None:
            cat = self._cone(cat, ra, dec, radius_arcsec)
        return _as_table(cat.compute(progress_bar=False))

    def lightcurve(
        self,
        source_id: int,
        *,
        ra: float | None = None,
        dec: float | None = None,
        radius_arcsec: float = 1.0,
    ) -> Table:
        """One source's light curve, in time order (empty if the id is not in the store).

        By id: ``Catalog.id_search`` with the collection's HATS index catalog on ``source_id``
        (published with every version since the index existed), which reads the index and then
        only the partition(s) holding the id. A collection published before (no ``source_id``
        in its ``all_indexes``) is scanned instead: every partition is read and filtered
        (``query``). With the position too (the static catalog's), the cone first limits the
        partitions to those around it. A non-integer id is refused (``CatalogInputError``).
        """
        sid = _source_id(source_id)
        cat = self.catalog("lightcurves")
        if ra is not None or dec is not None:
            cat = self._cone(cat, ra, dec, radius_arcsec)
        cat = self._by_id(cat, sid)
        t = _as_table(cat.compute(progress_bar=False))
        t.sort("mjd")
        return t

    @staticmethod
    def has_id_index(cat: Any) -> bool:
        """Whether the collection ``cat`` was opened from has an index catalog on ``source_id``."""
        collection = getattr(cat, "hc_collection", None)
        indexes = collection.all_indexes if collection is not None else None
        return indexes is not None and ID_INDEX in indexes

    def _by_id(self, cat: Any, source_id: int) -> Any:
        """``cat`` narrowed to the rows of ``source_id``: through the index if the collection
        has one (LSDB's ``id_search`` finds it in ``all_indexes``), else a scan."""
        if not self.has_id_index(cat):
            return cat.query(f"{ID_INDEX} == {source_id}")
        with contextlib.redirect_stdout(io.StringIO()):  # id_search prints "Searching for ..."
            return cat.id_search(values={ID_INDEX: source_id})

    @staticmethod
    def _cone(cat: Any, ra: float | None, dec: float | None, radius_arcsec: float | None) -> Any:
        if ra is None or dec is None or radius_arcsec is None:
            raise CatalogInputError("a cone needs ra, dec and radius_arcsec")
        if not radius_arcsec > 0:
            raise CatalogInputError(f"cone radius must be > 0 arcsec, not {radius_arcsec}")
        return cat.cone_search(float(ra), float(dec), float(radius_arcsec))

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
        cat = self.catalog("indices")
        if ra is not None:
            cat = self._cone(cat, ra, dec, radius_arcsec)
        if min_chi2 is not None:
            cat = cat.query(f"chi2_red >= {float(min_chi2)!r}")
        if min_stetson_j is not None:
            cat = cat.query(f"stetson_j >= {float(min_stetson_j)!r}")
        return _as_table(cat.compute(progress_bar=False), INDEX_COLUMNS)


def build_lightcurves(
    sources: Table,
    images: list[tuple[str, Any]],
    store: LightCurveStore,
    *,
    client: Any | None = None,
) -> Table:
    """Forced photometry of ``sources`` on every image, one Dask task per image, then the
    batch published (:meth:`LightCurveStore.publish`): returns the indices of the whole store.

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
    indices = store.publish()
    indices.meta["failed_images"] = failures
    indices.meta["rows_written"] = int(sum(r for r in results if isinstance(r, int)))
    return indices
