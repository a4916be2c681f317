"""Detector images (L1 ramps, L2 rate images), each with its truth catalog.

romanisim's ``image.simulate`` always renders the full 4088x4088 detector. Here the same
steps (galsim Roman WCS, galsim PSF at the detector position, sky + thermal background, QE
from the flat, romanisim's renderer, its detector effects and ramp fit) run on any
*footprint*: the full detector, or a cutout of it for fast work and tests, with the WCS of
the cutout shifted so sky positions stay right. Files are the roman_datamodels kinds
romancal reads (``ScienceRawModel`` for L1, ``ImageModel`` for L2); the truth catalog (every
input source with its pixel position and expected counts) is an astropy Table written beside
the image. L3 mosaics are :mod:`~platform_lib.simulate.mosaic`'s; the window geometry is :mod:`.cutout`'s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..instrument import REFERENCE_BORDER, SCIENCE_PIXELS
from .background import sky_background
from .bands import bandpass as cached_bandpass
from .bands import check_detector, check_element
from .cutout import (
    Footprint,
    distortion_file,
    exposure_wcs,
    footprint_gwcs,
    render_sources,
    with_border,
)
from .effects import InstrumentEffects, make_l1, read_pattern
from .errors import SimulationInputError
from .product import SimulatedImage
from .reference import load_reference_files, use_reference_data
from .scenes import validate_catalog

N_PIX = SCIENCE_PIXELS


@dataclass
class ExposureSpec:
    """One detector exposure: where, when, which element and MA table, which pixels, which level."""

    optical_element: str = "F158"
    detector: str = "WFI02"
    ra: float = 270.0
    dec: float = 66.0
    pa: float = 0.0
    start_time: str = "2027-06-01T00:00:00"
    ma_table: int = 4
    level: int = 2
    footprint: Footprint = field(default_factory=Footprint)
    seed: int = 0
    name: str = "sim"

    def check(self) -> ExposureSpec:
        self.optical_element = check_element(self.optical_element)
        self.detector = check_detector(self.detector)
        read_pattern(self.ma_table)
        if self.level not in (1, 2):
            raise SimulationInputError(
                "level must be 1 (ramps) or 2 (rate image); use simulate_mosaic for level 3"
            )
        if not (-90 <= float(self.dec) <= 90):
            raise SimulationInputError("dec must lie in [-90, 90] degrees")
        self.footprint.check()
        return self

    @property
    def filename(self) -> str:
        suffix = "uncal" if self.level == 1 else "cal"
        return f"{self.name}_{self.detector.lower()}_{self.optical_element.lower()}_{suffix}.asdf"


# --------------------------------------------------------------------------- rendering
def _metadata(spec: ExposureSpec):
    """Exposure metadata exactly as romanisim-make-image builds it (WFI_CEN pointing)."""
    from astropy.coordinates import SkyCoord
    from roman_datamodels.datamodels import ImageModel
    from romanisim import ris_make_utils, util
    from romanisim.models import parameters, wcs

    meta = ris_make_utils.set_metadata(
        date=spec.start_time,
        bandpass=spec.optical_element,
        sca=int(spec.detector[3:]),
        ma_table_number=int(spec.ma_table),
    )
    wcs.fill_in_parameters(
        meta, SkyCoord(spec.ra, spec.dec, unit="deg"), pa_aper=spec.pa, boresight=False
    )
    image_mod = ImageModel.create_fake_data()
    image_mod.meta["wcs"] = None
    for key, value in parameters.default_parameters_dictionary.items():
        image_mod.meta[key].update(value)
    for key, value in meta.items():
        image_mod.meta[key].update(value)
    util.add_more_metadata(image_mod.meta, usecrds=False)
    return image_mod


def _reference_arrays(image_mod, spec: ExposureSpec, effects: InstrumentEffects) -> dict:
    """romanisim's reference data for this exposure, overridden by effects, cut to the footprint."""
    from romanisim.models import parameters

    ref = load_reference_files(image_mod, dict(parameters.reference_data))
    for key, override in (
        ("readnoise", effects.read_noise),
        ("dark", effects.dark),
        ("gain", effects.gain),
        ("saturation", effects.saturation),
    ):
        if override is not None:
            if override < 0:
                raise SimulationInputError(f"{key} must be >= 0")
            ref[key] = float(override)
    fp = spec.footprint
    for key in ("readnoise", "dark", "gain", "saturation", "flat"):
        if ref.get(key) is not None:
            ref[key] = fp.cut(ref[key])
    for key in ("linearity", "inverselinearity"):
        model = ref.get(key)
        if model is not None and not fp.is_full:
            for attr, value in list(vars(model).items()):
                if isinstance(value, np.ndarray) and value.ndim >= 2:
                    setattr(model, attr, fp.cut(value))
    if ref.get("flat") is None:
        ref["flat"] = 1.0
    return ref


_PSF_CACHE: dict[tuple, Any] = {}


def _psf(spec: ExposureSpec, imwcs, date):
    """The galsim Roman PSF of this detector position (romanisim's galsim settings).

    Large footprints get romanisim's detector-varying PSF (its point-source ePSF table built by
    :class:`.epsf.FastVariablePSF`: the same table, 8x faster). A cutout gets one PSF at its
    centre, built with romanisim's ``psf_utils.getPSF`` as ``romanisim.psf.make_psf`` does
    (pupil_bin 8) but with the cached bandpass, and memoised per pointing and position: survey
    epochs of the same pointing reuse it instead of paying ~1 s each.
    """
    import galsim
    import romanisim.psf
    from romanisim.models.psf_utils import getPSF

    from .epsf import FastVariablePSF

    sca = int(spec.detector[3:])
    fp = spec.footprint
    if max(fp.nx, fp.ny) > 1024:
        # romanisim's variable PSF, with the fast build of its point-source ePSF table
        return FastVariablePSF.from_variable(
            romanisim.psf.make_psf(
                sca,
                spec.optical_element,
                wcs=imwcs,
                chromatic=False,
                psftype="galsim",
                variable=True,
                date=date,
            )
        )
    pix = (fp.x0 + fp.nx / 2, fp.y0 + fp.ny / 2)
    # the WCS is part of the key: the PSF is returned in world coordinates through it
    key = (
        sca,
        spec.optical_element,
        pix,
        round(spec.ra, 9),
        round(spec.dec, 9),
        round(spec.pa, 6),
        repr(imwcs.local(galsim.PositionD(*pix))),
    )
    if key not in _PSF_CACHE:
        if len(_PSF_CACHE) > 64:
            _PSF_CACHE.clear()
        # romanisim's own getPSF (its aberration model), not galsim.roman's: the two differ
        # by up to 5x pixel by pixel in the wings and ~1 % in the core
        _PSF_CACHE[key] = getPSF(
            sca,
            None,
            wcs=imwcs,
            SCA_pos=galsim.PositionD(*pix),
            wavelength=cached_bandpass(spec.optical_element),
            pupil_bin=8,
        )
    return _PSF_CACHE[key]


def _render_counts(image_mod, catalog, spec: ExposureSpec, ref: dict, effects: InstrumentEffects):
    """Total electrons over the exposure on the footprint (sources, sky, dark; Poisson noise)."""
    import galsim
    from romanisim import image as rimage
    from romanisim.models import bandpass as rbp
    from romanisim.models import parameters

    meta = image_mod.meta
    sca = int(spec.detector[3:])
    pattern = read_pattern(spec.ma_table)
    exptime = parameters.read_time * pattern[-1][-1]
    imwcs = exposure_wcs(meta, distortion_file(ref.get("reffiles")))
    date = meta.exposure.start_time
    fp = spec.footprint
    psf = _psf(spec, imwcs, date)
    img = galsim.ImageF(fp.nx, fp.ny, wcs=imwcs, xmin=fp.x0, ymin=fp.y0)
    bandpass = cached_bandpass(spec.optical_element)
    centre = ((N_PIX - 1) / 2, (N_PIX - 1) / 2)
    sky, area = sky_background(imwcs, img, spec.optical_element, date, centre, thermal=effects.sky)
    if not effects.sky:
        sky = None
    qe = rimage.flat_to_qe(ref["flat"], ref["gain"], area=area)
    # Every source on this detector has a position; romanisim's own trimming assumes the image
    # starts at pixel 0, so render_sources selects the sources near the footprint itself.
    x, y, rendered = render_sources(
        img,
        catalog,
        exptime=exptime,
        psf=psf,
        zpflux=rbp.get_abflux(spec.optical_element, sca),
        sky=sky,
        dark=ref["dark"] if np.any(np.asarray(ref["dark"]) > 0) else None,
        qe=qe,
        bandpass=bandpass,
        filter_name=spec.optical_element,
        rng=galsim.UniformDeviate(spec.seed + 1),
        seed=spec.seed + 1,
        margin=64,
    )
    return img, {"x": x, "y": y, "counts": rendered}, imwcs, exptime


def _truth(catalog, simcat, spec: ExposureSpec, gain, exptime: float):
    """Every input source: sky and file-pixel position, catalog flux, expected electrons."""
    from astropy.table import Table

    from .bands import zeropoint_rate

    fp = spec.footprint
    truth = Table()
    for col in ("source_id", "ra", "dec", "type", "n", "half_light_radius", "pa", "ba"):
        if col in catalog.colnames:
            truth[col] = catalog[col]
    x = np.asarray(simcat["x"], dtype=float) - fp.x0
    y = np.asarray(simcat["y"], dtype=float) - fp.y0
    truth["x"], truth["y"] = x, y
    truth["flux"] = np.asarray(catalog[spec.optical_element], dtype=float)
    rate = truth["flux"] * zeropoint_rate(spec.optical_element, spec.detector)
    truth["rate_electrons"] = rate  # e-/s before QE
    truth["rate_dn"] = rate / float(np.median(gain))  # DN/s, the L2 data unit
    truth["counts_rendered"] = np.asarray(simcat["counts"], dtype=float)
    truth["in_footprint"] = (x > -0.5) & (x < fp.nx - 0.5) & (y > -0.5) & (y < fp.ny - 0.5)
    truth.meta.update(
        optical_element=spec.optical_element,
        detector=spec.detector,
        exposure_time=exptime,
        footprint=asdict(fp),
    )
    return truth


def _l1_node(resultants, dq, meta, fp: Footprint):
    from roman_datamodels.datamodels import ScienceRawModel

    n = resultants.shape[0]
    border = 2 * REFERENCE_BORDER
    node = ScienceRawModel._node_type.create_fake_data(shape=(n, fp.ny + border, fp.nx + border))
    node["amp33"] = np.zeros((n, fp.ny + border, 128), dtype=node.amp33.dtype)
    node["meta"].update(meta)
    node["data"] = with_border(resultants, dtype=node.data.dtype)
    return node, {"dq": with_border(dq).astype("i4")}


def _record_no_jitter(meta) -> None:
    """Say in the file that the rendered PSF has no pointing jitter.

    romancal's source catalog convolves the ePSF with the image's guide-star jitter and, when
    the metadata is silent, assumes 8 mas: on a simulation that renders none that broadens the
    PSF model and biases PSF fluxes low by ~0.1-0.3 %.
    """
    for key in ("jitter_major", "jitter_minor", "jitter_position_angle"):
        meta["guide_star"][key] = 0.0


def simulate_exposure(
    catalog,
    spec: ExposureSpec,
    effects: InstrumentEffects | None = None,
    *,
    reference_data=None,
    apportioner: str = "fast",
) -> SimulatedImage:
    """Simulate one detector exposure (L1 or L2) of ``catalog`` on ``spec.footprint``.

    Every input is checked before anything is computed; nothing is written here (see
    :func:`write_product`).
    """
    from romanisim import image as rimage
    from romanisim.models import parameters

    spec.check()
    effects = effects or InstrumentEffects()
    validate_catalog(catalog, [spec.optical_element])
    pattern = read_pattern(spec.ma_table)
    with use_reference_data(reference_data, spec.optical_element):
        image_mod = _metadata(spec)
        ref = _reference_arrays(image_mod, spec, effects)
        counts, simcat, imwcs, exptime = _render_counts(image_mod, catalog, spec, ref, effects)
        persistence = effects.persistence_model()
        resultants, dq = make_l1(
            counts.array,
            pattern,
            effects=effects,
            refdata=ref,
            tstart=image_mod.meta.exposure.start_time,
            persistence=persistence,
            seed=spec.seed + 2,
            apportioner=apportioner,
            cut=spec.footprint.cut,
        )
        info: dict[str, Any] = {
            "spec": {**asdict(spec), "footprint": asdict(spec.footprint)},
            "effects": {k: v for k, v in asdict(effects).items() if k != "persistence"},
        }
        meta = image_mod.meta
        meta["filename"] = spec.filename
        _record_no_jitter(meta)
        meta["exposure"]["read_pattern"] = pattern
        meta["exposure"]["nresultants"] = len(pattern)
        if spec.level == 1:
            node, extras = _l1_node(resultants, dq, meta, spec.footprint)
        else:
            if ref.get("darkdecaysignal") is not None:
                # romanisim's make_l2 removes it on the full detector; do it on the footprint
                from .effects import _add_dark_decay

                resultants = resultants.copy()
                _add_dark_decay(
                    resultants, ref["darkdecaysignal"], pattern, spec.footprint.cut, sign=-1
                )
            slope, var_rn, var_p = rimage.make_l2(
                resultants,
                pattern,
                read_noise=ref["readnoise"],
                gain=ref["gain"],
                flat=ref["flat"],
                linearity=ref.get("linearity") if effects.nonlinearity else None,
                darkrate=ref["dark"],
                dq=dq,
                darkdecaysignal=None,
            )
            node, extras = rimage.make_asdf(
                slope,
                var_rn,
                var_p,
                metadata=meta,
                dq=np.bitwise_or.reduce(dq, axis=0),
                imwcs=imwcs,
                gain=ref["gain"],
            )
            from romanisim.models import wcs

            gw = footprint_gwcs(imwcs, spec.footprint)
            node["meta"]["wcs"] = gw
            node["meta"]["wcsinfo"]["s_region"] = wcs.create_s_region(gw, shape=slope.shape)
        if persistence is not None:
            extras["persistence"] = persistence.to_dict()
            info["persistence"] = persistence
        info["romanisim"] = extras
        truth = _truth(catalog, simcat, spec, ref["gain"], exptime)
        info["read_time"] = parameters.read_time
    return SimulatedImage(node, truth, info)


def sky_position(
    spec: ExposureSpec, x: float, y: float, reference_data=None
) -> tuple[float, float]:
    """(ra, dec) in degrees of file pixel (x, y) of an exposure, e.g. to place sources on it.

    ``reference_data``: the same as given to :func:`simulate_exposure` (a set's distortion
    changes where the pixels fall on the sky).
    """
    import galsim

    spec.check()
    with use_reference_data(reference_data, spec.optical_element) as ref:
        imwcs = exposure_wcs(_metadata(spec).meta, distortion_file(ref))
    pos = imwcs.toWorld(galsim.PositionD(spec.footprint.x0 + x, spec.footprint.y0 + y))
    return float(pos.ra.deg), float(pos.dec.deg)
