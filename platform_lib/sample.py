"""A small simulated Roman survey to search on day one: L1 + L2 cutouts and the PSF library.

romanisim simulates whole 4088² detectors (about 85 s and 1 GB per L1 here), far too much for
a sample that the local platform makes at start-up; so this builds *cutouts* with romanisim's
own pieces: its galsim.roman-based WCS for each detector at the pointing
(``romanisim.models.wcs.get_wcs``), its star catalogue maker, galsim.roman's PSF, its renderer
(through :func:`platform_lib.simulate.cutout.render_sources`, as every cutout simulator), and its
``l1.make_l1`` (apportioning electrons to resultants with read noise) and ``image.make_l2``
(ramp fitting), on an ``size × size`` piece at the centre of each detector. Each product is a
valid ``roman_datamodels`` ImageModel (L2, with a gwcs for the cutout) or ScienceRawModel (L1,
with the same footprint in ``wcsinfo.s_region``), written as ASDF into the store and indexed.
"""

from __future__ import annotations

import copy
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .data.store import Store, get_store
from .instrument import GALSIM_BANDS, PIXEL_SCALE
from .simulate.cutout import Footprint, render_sources, with_border

log = logging.getLogger(__name__)

__all__ = ["SampleSpec", "make_exposure", "make_sample", "detector_wcs", "make_l4_products"]

READ_PATTERN = [[1], [2, 3], [4, 5, 6, 7, 8, 9], [10, 11, 12, 13, 14, 15, 16, 17], [18]]
FRAME_TIME = 3.04
GAIN = 2.0
READ_NOISE = 5.0


@dataclass
class SampleSpec:
    """What ``make_sample`` makes (defaults: the local platform's first-day dataset)."""

    ra: float = 270.0
    dec: float = 66.0
    detectors: tuple[str, ...] = ("WFI01", "WFI02", "WFI03")
    optical_elements: tuple[str, ...] = ("F158", "F087")
    epochs: int = 3
    size: int = 128
    nstars: int = 400
    program: int = 1
    seed: int = 7
    psf_grid: int = 2
    psf_oversample: int = 2
    psf_stamp: int = 31


def detector_wcs(
    detector: str, ra: float, dec: float, start_time: Any, x0: int, y0: int, size: int
):
    """(galsim WCS, gwcs) of a ``size``² cutout at 0-based (x0, y0) of ``detector``.

    The galsim.roman WCS is a FITS TAN-SIP one, so moving CRPIX by the cutout's origin is exact.
    """
    import galsim
    from romanisim.models import parameters
    from romanisim.models import wcs as rwcs

    from platform_lib.simulate.cutout import fit_gwcs

    meta = copy.deepcopy(parameters.default_parameters_dictionary)
    meta["instrument"]["detector"] = detector
    meta["exposure"]["start_time"] = start_time
    meta["wcsinfo"]["ra_ref"] = ra
    meta["wcsinfo"]["dec_ref"] = dec
    meta["pointing"]["target_ra"], meta["pointing"]["target_dec"] = ra, dec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = rwcs.get_wcs(meta, usecrds=False)
    header = full.header.header.copy()
    header["CRPIX1"] -= x0
    header["CRPIX2"] -= y0
    cut = galsim.GSFitsWCS(header=header)
    # gwcs fitted to the SIP solution (TAN + degree-3 polynomials, both directions: well under
    # a micro-arcsecond on a cutout). The SIP gwcs from the header has no inverse, and gwcs
    # cannot build one numerically for it, so world_to_pixel would fail on the product.
    sip = rwcs.wcs_from_fits_header(header)
    gw = fit_gwcs(sip, size, size, degree=3, nodes=9, max_error_pix=1e-3)
    return cut, gw


def _stars(ra: float, dec: float, radius_deg: float, n: int, seed: int):
    """Point sources around the field (romanisim's star catalogue: positions and AB magnitudes)."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from romanisim import catalog

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return catalog.make_stars(
            SkyCoord(ra * u.deg, dec * u.deg), n=n, radius=radius_deg, faintmag=24, seed=seed
        )


_PSF_CACHE: dict[tuple[int, str], Any] = {}


def _psf(sca: int, band: str):
    import galsim.roman

    key = (sca, band)
    if key not in _PSF_CACHE:
        bp = galsim.roman.getBandpasses(AB_zeropoint=True)[band]
        _PSF_CACHE[key] = galsim.roman.getPSF(sca, band, pupil_bin=8, wavelength=bp)
    return _PSF_CACHE[key]


def make_exposure(
    detector: str,
    optical_element: str,
    ra: float,
    dec: float,
    start_time: Any,
    *,
    program: int = 1,
    visit: int = 1,
    exposure: int = 1,
    size: int = 128,
    stars: Any = None,
    seed: int = 1,
    sky_rate: float = 0.5,
) -> tuple[Any, Any]:
    """One exposure's (L1 ScienceRawModel, L2 ImageModel): ``size`` × ``size`` science pixels (the L1
    frame adds the reference border)."""
    import astropy.units as u
    import galsim
    import galsim.roman
    from astropy.time import Time
    from roman_datamodels import datamodels as dm
    from romanisim import image as rimage
    from romanisim import l1 as rl1
    from romanisim.models.bandpass import get_abflux
    from romanisim.models.wcs import create_s_region

    start = Time(start_time)
    sca = int(detector[3:])
    band = GALSIM_BANDS[optical_element]
    fp = Footprint.middle(size)
    gwcs_cut_galsim, gw = detector_wcs(detector, ra, dec, start, fp.x0, fp.y0, size)
    nreads = READ_PATTERN[-1][-1]
    exptime = nreads * FRAME_TIME
    rng = galsim.BaseDeviate(seed)

    counts = galsim.ImageF(size, size, wcs=gwcs_cut_galsim, xmin=0, ymin=0)
    has_stars = stars is not None and len(stars) > 0
    # stars through galsim.roman's PSF, a flat sky, Poisson noise: drawn as every cutout
    # simulator draws (platform_lib.simulate.cutout.render_sources). romanisim logs each
    # source it renders and that a galsim PSF has no fast point-source path: not news here.
    romanisim_log = logging.getLogger("romanisim")
    level = romanisim_log.level
    romanisim_log.setLevel(logging.ERROR)
    try:
        render_sources(
            counts,
            stars if has_stars else None,
            exptime=exptime,
            psf=_psf(sca, band) if has_stars else None,
            zpflux=get_abflux(optical_element, sca),  # e/s for a 1-maggie source
            filter_name=optical_element,
            sky=sky_rate,
            rng=rng,
        )
    finally:
        romanisim_log.setLevel(level)
    counts.array[:] = np.clip(counts.array, 0, None)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("romanisim").setLevel(logging.WARNING)
        resultants, dq = rl1.make_l1(
            counts, READ_PATTERN, read_noise=READ_NOISE, gain=GAIN, rng=rng
        )
        slope, var_rn, var_poisson = rimage.make_l2(
            resultants,
            READ_PATTERN,
            read_noise=READ_NOISE,
            gain=GAIN,
            flat=1.0,
            darkrate=0.0,
            linearity=None,
        )[:3]
    slope_e = np.asarray(slope, np.float32) * GAIN  # DN/s → e/s (gain applied, no flat)
    s_region = create_s_region(gw)

    def fill_meta(meta) -> None:
        meta.instrument.detector = detector
        meta.instrument.optical_element = optical_element
        meta.exposure.start_time = start
        meta.exposure.end_time = start + exptime * u.s
        meta.exposure.exposure_time = exptime
        meta.exposure.effective_exposure_time = exptime
        meta.exposure.frame_time = FRAME_TIME
        meta.exposure.nresultants = len(READ_PATTERN)
        meta.exposure.read_pattern = READ_PATTERN
        meta.exposure.ma_table_number = 3
        meta.exposure.ma_table_name = "SAMPLE_CUTOUT"
        meta.observation.program = program
        meta.observation.visit = visit
        meta.observation.exposure = exposure
        meta.observation.observation_id = f"r{program:05d}{visit:03d}{exposure:04d}"
        meta.wcsinfo.ra_ref, meta.wcsinfo.dec_ref = ra, dec
        meta.wcsinfo.aperture_name = f"{detector}_FULL"
        meta.wcsinfo.s_region = s_region
        meta.pointing.target_ra, meta.pointing.target_dec = ra, dec

    # An L1 frame carries the detector's 4-pixel reference border around the science pixels
    # (4096² around 4088²), so the ramp matches the platform's reference set of ``size``.
    data = with_border(np.clip(np.round(resultants), 0, 65535), dtype=np.uint16)
    raw = dm.ScienceRawModel.create_fake_data(shape=data.shape)
    fill_meta(raw.meta)
    raw.data = data
    raw.amp33 = np.zeros((len(READ_PATTERN), data.shape[1], 128), np.uint16)

    l2 = dm.ImageModel.create_fake_data(shape=(size, size))
    fill_meta(l2.meta)
    l2.meta.wcs = gw
    l2.meta.photometry.pixel_area = ((PIXEL_SCALE / 3600) * np.pi / 180) ** 2
    l2.data = slope_e
    l2.dq = (
        np.bitwise_or.reduce(np.asarray(dq, np.uint32), axis=0)
        if np.ndim(dq) == 3
        else np.asarray(dq, np.uint32)
    )
    var_p = np.asarray(var_poisson, np.float32) * GAIN**2
    var_r = np.asarray(var_rn, np.float32) * GAIN**2
    l2.var_poisson = var_p.astype(np.float16)
    l2.err = np.sqrt(var_p + var_r).astype(np.float16)
    return raw, l2


def make_sample(
    store: Store | str | None = None,
    spec: SampleSpec | None = None,
    *,
    prefix: str = "sample",
    index: bool = True,
    psf_library: bool = True,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Simulate the sample survey, stage it into the store (under ``prefix``) and index it."""
    import astropy.units as u
    from astropy.time import Time
    from tqdm.auto import tqdm

    spec = spec or SampleSpec()
    store = get_store(store)
    store.check()
    from astropy.table import vstack

    t0 = Time("2027-03-01T00:00:00", scale="utc")
    # Stars where the cutouts are: around the centre of each detector's cutout.
    x0 = Footprint.middle(spec.size).x0
    radius = 1.5 * spec.size * PIXEL_SCALE / 3600
    per = max(1, spec.nstars // len(spec.detectors))
    tables = []
    for i, det in enumerate(spec.detectors):
        _, gw = detector_wcs(det, spec.ra, spec.dec, t0, x0, x0, spec.size)
        cra, cdec = gw(spec.size / 2, spec.size / 2)
        tables.append(_stars(float(cra), float(cdec), radius, per, spec.seed + i))
    stars = vstack(tables)
    jobs = [
        (epoch, oe, det)
        for epoch in range(spec.epochs)
        for oe in spec.optical_elements
        for det in spec.detectors
    ]
    written: list[str] = []
    with tempfile.TemporaryDirectory(prefix="roman-sample-") as tmp:
        for n, (epoch, oe, det) in enumerate(
            tqdm(jobs, desc="simulating", disable=progress is False)
        ):
            visit = epoch + 1
            exposure = spec.optical_elements.index(oe) + 1
            start = t0 + (epoch * 1.0 + exposure * 0.01) * u.day
            # dithers of a fifth of a cutout between epochs: overlapping, not identical
            step = 0.2 * spec.size * PIXEL_SCALE / 3600 * epoch
            raw, l2 = make_exposure(
                det,
                oe,
                spec.ra + step / np.cos(np.radians(spec.dec)),
                spec.dec + step / 2,
                start,
                program=spec.program,
                visit=visit,
                exposure=exposure,
                size=spec.size,
                stars=stars,
                seed=spec.seed * 1000 + n,
            )
            base = f"r{spec.program:05d}{visit:03d}{exposure:04d}_{det.lower()}_{oe.lower()}"
            for level, model, suffix in (("L1", raw, "uncal"), ("L2", l2, "cal")):
                local = Path(tmp) / f"{base}_{suffix}.asdf"
                model.meta.filename = local.name
                model.save(local)
                rel = f"{prefix}/{level}/{local.name}".lstrip("/")
                store.put_file(local, rel)
                written.append(rel)
    result: dict[str, Any] = {"products": written}
    if psf_library:
        from .data.psf import build_psf_library

        result["psf"] = build_psf_library(
            store,
            detectors=spec.detectors,
            optical_elements=spec.optical_elements,
            prefix=f"{prefix}/psf",
            grid=spec.psf_grid,
            oversample=spec.psf_oversample,
            stamp=spec.psf_stamp,
            progress=progress,
        )
    if index:
        from .data.index import build_index

        result["index"] = build_index(store, progress=progress)
    return result


def make_l4_products(
    prefix_url: str, name: str, ra: float, dec: float, *, band: str = "F158", size: int = 100
) -> dict[str, str]:
    """A small L4 product pair as the catalog pipeline writes it (catalog + segmentation map).

    Two labelled sources on a ``size``² TAN-projected map centred on (ra, dec), written by the
    pipeline's own writer (``platform_lib.catalogs.outputs.write_products``) so tests and
    tutorials index and publish exactly what the platform produces.
    """
    import astropy.units as u
    from astropy.table import QTable
    from astropy.wcs import WCS

    from platform_lib.catalogs.outputs import write_products

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [size / 2 + 0.5, size / 2 + 0.5]
    w.wcs.cdelt = [-PIXEL_SCALE / 3600, PIXEL_SCALE / 3600]
    segm = np.zeros((size, size), np.uint32)
    x = np.array([0.2, 0.7]) * size
    y = np.array([0.1, 0.6]) * size
    for label, (xi, yi) in enumerate(zip(x.astype(int), y.astype(int)), start=1):
        segm[yi : yi + 4, xi : xi + 4] = label
    src_ra, src_dec = w.all_pix2world(x + 1.5, y + 1.5, 0)
    cat = QTable(
        {
            "label": np.array([1, 2], np.int32),
            "ra": src_ra * u.deg,
            "dec": src_dec * u.deg,
            "kron_flux": np.array([3.0, 5.0]) * u.uJy,
        }
    )
    cat.meta["band"] = band
    return write_products(prefix_url, name, catalog=cat, segmentation=segm, wcs=w)
