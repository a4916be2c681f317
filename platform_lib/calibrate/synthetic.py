"""L1 exposures made with romanisim from the same reference-file set the pipeline uses.

Why here and not in ``platform_lib.simulate``: validating a calibration needs what a science
simulation throws away — the noiseless rate the pipeline should recover, the charge each cosmic
ray deposited, the true WCS behind a deliberately wrong commanded pointing — and it needs every
instrument effect drawn from the reference set so that truth and calibration agree by
construction. This module drives romanisim's own building blocks (``make_l1``, ``make_asdf``)
with that set, and draws its pixels as every cutout simulator does
(:func:`platform_lib.simulate.cutout.render_sources`: romanisim's ``simulate_counts_generic``);
the tests and benchmarks use it.

Sub-array sets (``size < 4088``) are simulated at the detector's lower-left corner without the
dark-decay signal: both romanisim's and romancal's dark-decay models compute read times for the
full 4096² frame.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.refset import ReferenceSet
from ..instrument import CENTRE_PIXEL, REFERENCE_BORDER, SCIENCE_PIXELS
from ..simulate.background import sky_background
from ..simulate.cutout import render_noiseless, render_sources, without_border


@dataclass
class SimulatedExposure:
    """An L1 file plus the truth a validation needs (all arrays on the science grid)."""

    l1_path: Path
    truth_rate: np.ndarray  # DN/s after flat-fielding (what L2 data should be), IPC included
    cr_deposit: np.ndarray | None  # DN deposited by cosmic rays per pixel (None: no CRs)
    true_wcs: Any  # gwcs of the real pointing
    stars: Any  # astropy Table: ra, dec, flux (maggies), x, y (true pixel positions)
    exptime: float
    info: dict[str, Any] = field(default_factory=dict)


class _InPlaceIPC:
    """IPC applied in place to the resultants, as ``make_l1`` expects.

    romanisim 0.14's ``IPC.apply`` rebinds its local name instead of writing into a NumPy
    array, so ``make_l1`` (which ignores the return value) silently skips IPC; this object
    applies the same kernel with the same convolution and edge handling, in place.
    """

    def __init__(self, kernel: np.ndarray) -> None:
        self.ipc_kernel = kernel

    def apply(self, img: np.ndarray) -> None:
        from scipy import ndimage

        img[...] = ndimage.convolve(img, self.ipc_kernel[None, ...], mode="constant", cval=0.0)


@contextlib.contextmanager
def _romanisim_size(n: int) -> Iterator[None]:
    """romanisim sizes its arrays from a module global; set it for a sub-array, then restore."""
    from romanisim.models import parameters

    old = parameters.n_pix
    parameters.n_pix = n
    try:
        yield
    finally:
        parameters.n_pix = old


def star_table(
    ra: float,
    dec: float,
    radius_deg: float,
    n: int,
    mag_range: tuple[float, float],
    filter_name: str,
    seed: int,
) -> Any:
    """Point sources uniform in a disc, AB magnitudes uniform in ``mag_range`` (romanisim format)."""
    from astropy.table import Table

    rng = np.random.default_rng(seed)
    r = radius_deg * np.sqrt(rng.random(n))
    phi = rng.random(n) * 2 * np.pi
    dec_s = dec + r * np.sin(phi)
    ra_s = ra + r * np.cos(phi) / np.cos(np.radians(dec))
    mag = rng.uniform(*mag_range, n)
    t = Table()
    t["ra"] = ra_s
    t["dec"] = dec_s
    t["type"] = ["PSF"] * n
    t["n"] = -np.ones(n)
    t["half_light_radius"] = np.zeros(n)
    t["pa"] = np.zeros(n)
    t["ba"] = np.ones(n)
    t[filter_name] = (10 ** (-0.4 * mag)).astype("f4")
    return t


def simulate_l1(
    refset: ReferenceSet,
    out_path: str | Path,
    *,
    ra: float,
    dec: float,
    stars: Any,
    optical_element: str = "F158",
    ma_table_number: int = 4,
    read_pattern: list[list[int]] | None = None,
    roll_ref: float = 0.0,
    pointing_error_arcsec: tuple[float, float] = (0.0, 0.0),
    cosmic_rays: dict[str, Any] | None = None,
    seed: int = 1,
    start_time: str = "2027-06-01T00:00:00",
    ipc: bool = True,
    filename: str | None = None,
) -> SimulatedExposure:
    """Simulate one L1 exposure whose detector is exactly the reference set's.

    ``ra``/``dec``: true sky position of the science-array centre. ``pointing_error_arcsec``:
    (east, north) error put into the commanded pointing written in the file's metadata, so the
    pipeline's WCS is wrong by that much until tweakreg fixes it. ``cosmic_rays``: romanisim
    ``simulate_crs`` keywords (``{}`` for its defaults, None for none); the deposit map is
    measured by simulating the same exposure again without them (romanisim draws cosmic rays
    from their own random stream, so everything else is identical). The hit area defaults to
    this array's share of the detector's 16.8 cm².
    """
    import astropy.coordinates
    import astropy.time
    import astropy.units as u
    import galsim
    import roman_datamodels.datamodels as rdm
    from roman_datamodels.datamodels import ImageModel
    from romanisim import l1 as rl1
    from romanisim import psf as rpsf
    from romanisim import util as rutil
    from romanisim.models import bandpass as rbp
    from romanisim.models import parameters as rp
    from romanisim.models import wcs as rwcs
    from romanisim.models.nonlinearity import Nonlinearity
    from scipy import ndimage

    n = refset.shape[0] - 2 * REFERENCE_BORDER
    detector = refset.detector
    sca = int(detector[3:])
    par = refset.parameters
    gain = par["gain"]
    if read_pattern is None:
        read_pattern = rp.read_pattern[ma_table_number]
    exptime = par["read_time"] * read_pattern[-1][-1]
    date = astropy.time.Time(start_time, format="isot", scale="utc")

    def ref(key: str) -> Any:
        return rdm.open(refset.reference_file(key, optical_element))

    with ref("distortion") as m:
        distortion = copy.deepcopy(m.coordinate_distortion_transform)
    with ref("flat") as m:
        qe = np.array(m.data, dtype=np.float64)
    with ref("mask") as m:
        dead = (without_border(np.asarray(m.dq)) & 1) != 0  # DO_NOT_USE
    qe[dead] = 0.0
    with ref("dark") as m:
        dark_e = without_border(np.array(m.dark_slope, dtype=np.float64)) * gain
    with ref("inverselinearity") as m:
        inv_coeffs = without_border(np.array(m.coeffs, dtype=np.float64))
    beta = par["nonlinearity_beta"]
    sat = par["saturation"]
    # linear DN that reads as raw saturation (root of L + beta L^2 = sat), with romanisim's 10%
    lin_sat = (-1 + np.sqrt(1 + 4 * beta * sat)) / (2 * beta) if beta else sat
    inv_lin = Nonlinearity(
        coeffs=inv_coeffs,
        gain=gain,
        reftype="inverselinearity",
        saturation=lin_sat * 1.1,
        getdq=True,
    )
    ipc_model = None
    kernel = None
    if ipc and refset.has("ipc"):
        with ref("ipc") as m:
            kernel = np.array(m.data, dtype=np.float64)
        kernel /= kernel.sum()
        ipc_model = _InPlaceIPC(kernel)
    darkdecay = None
    if not refset.subarray and refset.has("darkdecaysignal"):
        with ref("darkdecaysignal") as m:
            t = getattr(m.decay_table, detector)
            darkdecay = dict(
                amplitude=float(t.amplitude), time_constant=float(t.time_constant), sca=sca
            )

    with _romanisim_size(n):
        # metadata, romanisim's defaults first
        image_mod = ImageModel.create_fake_data()
        meta = image_mod.meta
        meta["wcs"] = None
        for key, value in rp.default_parameters_dictionary.items():
            meta[key].update(copy.deepcopy(value))
        meta["instrument"].update({"detector": detector, "optical_element": optical_element})
        meta["exposure"].update(
            {"start_time": date, "ma_table_number": ma_table_number, "read_pattern": read_pattern}
        )
        meta["pointing"].update({"target_ra": ra, "target_dec": dec})
        rutil.add_more_metadata(meta, usecrds=False)

        centre = ((n - 1) / 2.0, (n - 1) / 2.0)
        v2_ref, v3_ref = (float(v) for v in distortion(*centre))
        true_wcs = rwcs.make_wcs(
            astropy.coordinates.SkyCoord(ra * u.deg, dec * u.deg),
            distortion,
            v2_ref=v2_ref,
            v3_ref=v3_ref,
            roll_ref=roll_ref,
        )
        true_wcs.bounding_box = ((-0.5, n - 0.5), (-0.5, n - 0.5))
        gwcs_wrapped = rwcs.GWCS(true_wcs)
        image = galsim.ImageF(n, n, wcs=gwcs_wrapped, xmin=0, ymin=0)

        abflux = rbp.get_abflux(optical_element, sca)
        # the PSF the reference set's ePSF and aperture corrections were made from
        psf = rpsf.make_psf(
            sca,
            optical_element,
            wcs=gwcs_wrapped,
            psftype="galsim",
            pix=(CENTRE_PIXEL, CENTRE_PIXEL),
        )
        # the sky as platform_lib.simulate renders it, evaluated at this array's centre
        centre = image.true_center
        sky, _ = sky_background(gwcs_wrapped, image, optical_element, date, (centre.x, centre.y))

        # star positions through the true WCS
        x, y = true_wcs.invert(np.asarray(stars["ra"]), np.asarray(stars["dec"]))
        keep = (x > -20) & (x < n + 20) & (y > -20) & (y < n + 20)
        stars = stars[keep]
        x, y = x[keep], y[keep]

        # the pixels as every cutout simulator draws them (platform_lib.simulate.cutout)
        render_sources(
            image,
            stars,
            xy=(x, y),
            exptime=exptime,
            psf=psf,
            zpflux=abflux,
            sky=sky.array,
            dark=dark_e,
            qe=qe,
            filter_name=optical_element,
            rng=galsim.UniformDeviate(seed),
        )

        # noiseless truth: the same objects without noise, plus sky, as a rate per unit QE
        noiseless = galsim.ImageF(n, n, wcs=gwcs_wrapped, xmin=0, ymin=0)
        render_noiseless(
            noiseless,
            stars,
            x,
            y,
            psf=psf,
            flux_to_counts=exptime * abflux,
            filter_name=optical_element,
            rng=galsim.UniformDeviate(seed + 7),
        )
        truth_e = noiseless.array.astype(np.float64) / exptime + sky.array
        if kernel is not None:
            truth_e = ndimage.convolve(truth_e, kernel, mode="constant", cval=0.0)
        truth_rate = truth_e / gain

        rutil.update_pointing_and_wcsinfo_metadata(meta, true_wcs)
        counts = image
        counts_e = image.array.copy()

        def make(crparam: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
            return rl1.make_l1(
                counts,
                read_pattern,
                read_noise=par["read_noise"],
                pedestal=rp.pedestal,
                pedestal_extra_noise=rp.pedestal_extra_noise,
                rng=galsim.UniformDeviate(seed + 1),
                gain=gain,
                crparam=crparam,
                inv_linearity=inv_lin,
                tstart=date,
                persistence=None,
                saturation=sat,
                darkdecaysignal=darkdecay,
                ipc_model=ipc_model,
            )

        if cosmic_rays is not None:
            # romanisim's rate is per full detector (area 16.8 cm^2); scale to this array
            cosmic_rays = {"area": rp.cr["area"] * (n / SCIENCE_PIXELS) ** 2, **cosmic_rays}
        resultants, l1dq = make(cosmic_rays)
        cr_deposit = None
        if cosmic_rays is not None:
            clean, _ = make(None)
            cr_deposit = (resultants[-1] - clean[-1]).astype(np.float64)

        # the commanded (wrong) pointing: shift ra_ref/dec_ref by the error
        if any(pointing_error_arcsec):
            c = astropy.coordinates.SkyCoord(
                meta.wcsinfo.ra_ref * u.deg, meta.wcsinfo.dec_ref * u.deg
            )
            de, dn = pointing_error_arcsec
            moved = c.spherical_offsets_by(de * u.arcsec, dn * u.arcsec)
            meta.wcsinfo.ra_ref = float(moved.ra.deg)
            meta.wcsinfo.dec_ref = float(moved.dec.deg)

        name = filename or Path(out_path).name
        meta["filename"] = name
        from platform_lib.simulate.images import _record_no_jitter

        _record_no_jitter(meta)  # the rendered PSF has none (romancal would assume 8 mas)
        l1_model, _extras = rl1.make_asdf(resultants, dq=None, metadata=meta)
        model = rdm.ScienceRawModel(l1_model)
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        model.save(out_path)

    from astropy.table import Table

    star_out = Table(stars)
    star_out["x"] = x
    star_out["y"] = y
    star_out["flux"] = stars[optical_element]
    return SimulatedExposure(
        l1_path=out_path,
        truth_rate=truth_rate,
        cr_deposit=cr_deposit,
        true_wcs=true_wcs,
        stars=star_out,
        exptime=exptime,
        info={
            "sky_e_per_s": float(np.median(sky.array)),
            "abflux": float(abflux),
            "saturation_dn": sat,
            "jump_truth_dq": l1dq,
            "counts_e": counts_e,
            "qe": qe,
            "dark_e": dark_e,
        },
    )
