"""A complete, self-consistent WFI reference-file set built with roman_datamodels' own models.

Why: no CRDS server is reachable from CI or a laptop, and a calibration is only testable when
the simulator that made the data and the pipeline that calibrates it agree on the instrument.
The numbers here come from romanisim's own parameters (gain, read noise, dark current,
saturation, non-linearity coefficient, IPC kernel, zero points), so a romanisim exposure made
with :func:`reference_data_mapping` and calibrated with :func:`override_parameters` is
consistent by construction. The set is described by a manifest (``refset.yaml``) listing each
file and its checksum; a set is used by path, local or in the data store.

Sizes: ``size=4088`` is the full detector (4096² frames with the 4-pixel reference border). A
smaller ``size`` makes a sub-array set for tests: romancal's steps run on it except ``refpix``,
whose correction needs the 32 full 128-column amplifier channels (its coefficient arrays are
per channel and per row), so a sub-array set carries no refpix file and the pipeline skips
that step, saying so in the product's provenance.

Reading a set is :mod:`platform_lib.data.refset`'s, the PSF the set derives from is
:mod:`.refset_psf`'s.

Size: near 490 lines on purpose: :func:`build_models` makes every file of a set from one
:class:`RefSetSpec` in one pass, so that their numbers agree by construction.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..data import transfer
from ..data.refset import MANIFEST, open_reference_set, sha256_file
from ..instrument import (
    DETECTORS,
    FRAME_PIXELS,
    IMAGING_ELEMENTS,
    PIXEL_SCALE,
    REFERENCE_BORDER,
    SCIENCE_PIXELS,
)
from ..simulate.cutout import with_border
from .refset_psf import (
    EPSF_OVERSAMPLE,
    encircled_energy_radii,
    pixel_integrated_psf,
    simulator_psf,
)

CHANNEL_WIDTH = 128
N_CHANNELS = 32
OPTICAL_ELEMENTS = tuple(sorted(IMAGING_ELEMENTS))
# Reference types each ExposurePipeline step asks for (Step.reference_file_types), plus what
# romanisim reads. 'flat', 'photom' and 'apcorr' depend on the optical element.
PIPELINE_REFTYPES = (
    "mask",
    "saturation",
    "refpix",
    "darkdecaysignal",
    "linearity",
    "inverselinearity",
    "integralnonlinearity",
    "dark",
    "readnoise",
    "gain",
    "distortion",
    "flat",
    "photom",
    "apcorr",
)
SIMULATOR_REFTYPES = (
    "dark",
    "darkdecaysignal",
    "distortion",
    "flat",
    "gain",
    "inverselinearity",
    "linearity",
    "integralnonlinearity",
    "readnoise",
    "saturation",
    "ipc",
)


class RefSetSpec(BaseModel):
    """What to generate. Defaults are romanisim's instrument parameters."""

    model_config = ConfigDict(extra="forbid")

    detector: str = "WFI01"
    size: int = Field(SCIENCE_PIXELS, description="science pixels per side (4088 = full detector)")
    optical_elements: tuple[str, ...] = ("F158",)
    seed: int = 1
    gain: float | None = Field(None, description="electron/DN; default romanisim's")
    read_noise: float | None = Field(None, description="DN; default romanisim's")
    dark_current: float | None = Field(None, description="electron/s; default romanisim's")
    saturation: float | None = Field(None, description="DN; default romanisim's")
    nonlinearity_beta: float | None = Field(
        None, description="raw = L + beta*L^2 (DN); default romanisim's classical beta"
    )
    flat_rms: float = Field(0.01, description="pixel-to-pixel QE rms")
    hot_pixel_fraction: float = 1e-4
    hot_pixel_rate: float = Field(2.0, description="DN/s of a hot pixel's dark current")
    dead_pixel_fraction: float = 1e-4
    dark_decay_amplitude: float = Field(5.0, description="DN at t=0")
    dark_decay_time_constant: float = Field(23.0, description="s")
    pixel_scale: float = Field(PIXEL_SCALE, description="arcsec/pixel")
    ee_fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, v: str) -> str:
        if v not in DETECTORS:
            raise ValueError(f"unknown detector {v!r}; expected one of WFI01..WFI18")
        return v

    @field_validator("size")
    @classmethod
    def _size(cls, v: int) -> int:
        if not 32 <= v <= SCIENCE_PIXELS:
            raise ValueError(
                f"size must be between 32 and {SCIENCE_PIXELS} science pixels, got {v}"
            )
        return v

    @field_validator("optical_elements")
    @classmethod
    def _filters(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [f for f in v if f not in OPTICAL_ELEMENTS]
        if bad or not v:
            raise ValueError(f"unknown optical element(s) {bad}; expected from {OPTICAL_ELEMENTS}")
        return tuple(v)

    @property
    def full_frame(self) -> bool:
        return self.size == SCIENCE_PIXELS

    @property
    def frame_shape(self) -> tuple[int, int]:
        n = self.size + 2 * REFERENCE_BORDER
        return (n, n)


def instrument_parameters(spec: RefSetSpec) -> dict[str, float]:
    """The instrument numbers of the set, filled from romanisim where the spec leaves them."""
    from romanisim.models import nonlinearity as rnl
    from romanisim.models import parameters as rp

    ref = rp.reference_data
    return {
        "gain": float(spec.gain if spec.gain is not None else ref["gain"]),
        "read_noise": float(spec.read_noise if spec.read_noise is not None else ref["readnoise"]),
        "dark_current": float(spec.dark_current if spec.dark_current is not None else ref["dark"]),
        "saturation": float(spec.saturation if spec.saturation is not None else ref["saturation"]),
        "nonlinearity_beta": float(
            spec.nonlinearity_beta if spec.nonlinearity_beta is not None else rnl.nonlinearity_beta
        ),
        "pedestal_electrons": float(rp.pedestal),
        "read_time": float(rp.read_time),
    }


# ----------------------------------------------------------------------------- geometry
def detector_v2v3(detector: str) -> tuple[float, float]:
    """Approximate V2/V3 (arcsec) of a detector's centre: a 6x3 grid about WFI_CEN.

    Not the as-built focal plane; it gives a visit a realistic footprint and spacing.
    """
    from romanisim.models import parameters as rp

    i = int(detector[3:]) - 1
    col, row = i // 3, i % 3
    pitch = (SCIENCE_PIXELS * PIXEL_SCALE) + 40.0
    return (rp.v2v3_wficen[0] + (col - 2.5) * pitch, rp.v2v3_wficen[1] + (row - 1) * pitch)


def distortion_model(spec: RefSetSpec) -> Any:
    """Science-array pixels -> V2/V3 arcsec: scale, the WFI's -60 deg V3 angle, parity, offset."""
    from astropy.modeling import models

    n = spec.size
    centre = (n - 1) / 2.0
    theta = math.radians(60.0)
    s = spec.pixel_scale
    matrix = s * np.array([[-math.cos(theta), math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    v2c, v3c = detector_v2v3(spec.detector)
    model = (models.Shift(-centre) & models.Shift(-centre)) | models.AffineTransformation2D(
        matrix=matrix, translation=[v2c, v3c]
    )
    model.bounding_box = ((-0.5, n - 0.5), (-0.5, n - 0.5))
    model.name = "platform_distortion"
    return model


# ----------------------------------------------------------------------------- builders
def _meta(
    model: Any, spec: RefSetSpec, description: str, optical_element: str | None = None
) -> None:
    from astropy.time import Time

    model.meta.description = description
    model.meta.author = "roman-science-platform platform_lib.calibrate.reference_files"
    model.meta.pedigree = "SIMULATION"
    model.meta.origin = "roman-science-platform"
    model.meta.useafter = Time("2020-01-01T00:00:00", format="isot", scale="utc")
    if "instrument" in model.meta:
        model.meta.instrument.detector = spec.detector
        if optical_element is not None and "optical_element" in model.meta.instrument:
            model.meta.instrument.optical_element = optical_element


def _pixel_maps(spec: RefSetSpec) -> dict[str, np.ndarray]:
    """Random pixel populations, drawn once so every file of the set shares them."""
    rng = np.random.default_rng(spec.seed)
    n = spec.size
    qe = 1.0 + spec.flat_rms * rng.standard_normal((n, n))
    dead = rng.random((n, n)) < spec.dead_pixel_fraction
    hot = (rng.random((n, n)) < spec.hot_pixel_fraction) & ~dead
    return {"qe": qe.astype(np.float32), "dead": dead, "hot": hot}


def linearity_coefficients(beta: float, ncoeff: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """(linearity, inverse linearity) polynomial coefficients, constant term first.

    Inverse (what the detector does): raw = L + beta L². Its exact inverse is
    L = (-1 + sqrt(1 + 4 beta raw)) / (2 beta) whose series is sum c_k raw^k with
    c_k = (-beta)^(k-1) Catalan(k-1); seven terms are accurate to < 0.3 DN at saturation.
    """
    inverse = np.zeros(ncoeff)
    inverse[1] = 1.0
    inverse[2] = beta
    forward = np.zeros(ncoeff)
    for k in range(1, ncoeff):
        forward[k] = (-beta) ** (k - 1) * math.comb(2 * (k - 1), k - 1) / k
    return forward, inverse


def _epsf_model(spec: RefSetSpec, optical_element: str, stamp: np.ndarray) -> Any:
    """ePSF reference: the simulator's PSF on a 2x2 grid (it does not vary across a set)."""
    import roman_datamodels.datamodels as rdm

    n = spec.size
    xs = [0.0, n - 1.0, 0.0, n - 1.0]
    ys = [0.0, 0.0, n - 1.0, n - 1.0]
    spectral = ["A0V", "G2V", "M6V"]
    # "new style" stamps: integrated over the pixel, summing to oversample**2
    cube = np.broadcast_to(
        (stamp * EPSF_OVERSAMPLE**2).astype(np.float32), (1, len(spectral), len(xs)) + stamp.shape
    ).copy()
    m = rdm.EpsfRefModel.create_fake_data(shape=cube.shape)
    m.psf = cube
    m.meta.oversample = EPSF_OVERSAMPLE
    m.meta.spectral_type = spectral
    m.meta.defocus = [0]
    m.meta.pixel_x = xs
    m.meta.pixel_y = ys
    m.meta.jitter_major = 0.0
    m.meta.jitter_minor = 0.0
    m.meta.jitter_position_angle = 0.0
    if "extended_psf" in m:
        del m["extended_psf"]
    _meta(
        m,
        spec,
        f"ePSF {optical_element}: romanisim's galsim PSF, pixel-integrated, 4x",
        optical_element,
    )
    return m


def build_models(spec: RefSetSpec) -> dict[str, Any]:
    """All reference models of the set (key: reftype, or ``flat_F158`` etc. per filter)."""
    import roman_datamodels.datamodels as rdm
    from roman_datamodels.dqflags import pixel
    from romanisim.models import bandpass as rbp
    from romanisim.models.ipc import ipc_kernel

    p = instrument_parameters(spec)
    maps = _pixel_maps(spec)
    n = spec.size
    shape = spec.frame_shape
    sca = int(spec.detector[3:])
    out: dict[str, Any] = {}

    border = np.ones(shape, dtype=bool)
    border[REFERENCE_BORDER:-REFERENCE_BORDER, REFERENCE_BORDER:-REFERENCE_BORDER] = False

    mask = rdm.MaskRefModel.create_fake_data(shape=shape)
    dq = np.zeros(shape, dtype=np.uint32)
    dq[border] = pixel.REFERENCE_PIXEL
    dq[REFERENCE_BORDER:-REFERENCE_BORDER, REFERENCE_BORDER:-REFERENCE_BORDER][maps["dead"]] = (
        pixel.DEAD | pixel.DO_NOT_USE
    )
    mask.dq = dq
    _meta(mask, spec, "Bad-pixel mask: reference border and dead pixels")
    out["mask"] = mask

    sat = rdm.SaturationRefModel.create_fake_data(shape=shape)
    sat.data = np.full(shape, p["saturation"], dtype=np.float32)
    sat.dq = np.zeros(shape, dtype=np.uint32)
    _meta(sat, spec, "Saturation level in raw DN (romanisim's)")
    out["saturation"] = sat

    fwd, inv = linearity_coefficients(p["nonlinearity_beta"])
    for key, cls, coeffs, what in (
        ("linearity", rdm.LinearityRefModel, fwd, "raw DN -> linear DN"),
        ("inverselinearity", rdm.InverselinearityRefModel, inv, "linear DN -> raw DN"),
    ):
        m = cls.create_fake_data(shape=(len(coeffs),) + shape)
        m.coeffs = np.broadcast_to(
            coeffs.astype(np.float32)[:, None, None], (len(coeffs),) + shape
        ).copy()
        m.dq = np.zeros(shape, dtype=np.uint32)
        _meta(m, spec, f"Classical non-linearity ({what}), beta={p['nonlinearity_beta']:g}")
        out[key] = m

    inl = rdm.IntegralnonlinearityRefModel.create_fake_data()
    inl.meta.n_channels = N_CHANNELS
    inl.meta.n_pixels_per_channel = CHANNEL_WIDTH * FRAME_PIXELS
    inl.value = np.arange(0, 65536, 256, dtype=np.uint16)
    inl.inl_table = {
        f"science_channel_{c:02d}": {
            "instrument_channel": c - 1,
            "correction": np.zeros(inl.value.size, dtype=np.float64),
        }
        for c in range(1, N_CHANNELS + 1)
    }
    _meta(inl, spec, "Integral non-linearity: none (romanisim simulates none by default)")
    out["integralnonlinearity"] = inl

    dark = rdm.DarkRefModel.create_fake_data(shape=shape)
    rate = np.full((n, n), p["dark_current"] / p["gain"], dtype=np.float32)
    rate[maps["hot"]] = spec.hot_pixel_rate
    dark.dark_slope = with_border(rate, fill=0.0, dtype=np.float32)
    dark.dark_slope_error = np.full(shape, 1e-4, dtype=np.float32)
    dark.dq = np.zeros(shape, dtype=np.uint32)
    _meta(dark, spec, "Dark current rate (DN/s) with hot pixels")
    out["dark"] = dark

    ddk = rdm.DarkdecaysignalRefModel.create_fake_data()
    ddk.decay_table = {
        d: {
            "amplitude": float(spec.dark_decay_amplitude),
            "time_constant": float(spec.dark_decay_time_constant),
        }
        for d in DETECTORS
    }
    _meta(ddk, spec, "Dark decay signal after reset, per detector")
    out["darkdecaysignal"] = ddk

    for key, cls, value, what in (
        ("readnoise", rdm.ReadnoiseRefModel, p["read_noise"], "Read noise per read (DN)"),
        ("gain", rdm.GainRefModel, p["gain"], "Gain (electron/DN)"),
    ):
        m = cls.create_fake_data(shape=shape)
        m.data = np.full(shape, value, dtype=np.float32)
        _meta(m, spec, what)
        out[key] = m

    ipc = rdm.IpcRefModel.create_fake_data(shape=(3, 3))
    ipc.data = np.asarray(ipc_kernel, dtype=np.float32)
    _meta(ipc, spec, "Inter-pixel capacitance kernel (romanisim's)")
    out["ipc"] = ipc

    dist = rdm.DistortionRefModel.create_fake_data()
    dist.coordinate_distortion_transform = distortion_model(spec)
    dist.meta.input_units = "pixel"
    dist.meta.output_units = "arcsec"
    _meta(dist, spec, "Affine science-pixel -> V2/V3 distortion (0.11 arcsec/pixel)")
    out["distortion"] = dist

    pixel_sr = float((spec.pixel_scale / 206264.80624709636) ** 2)
    area = rdm.PixelareaRefModel.create_fake_data(shape=(n, n))
    area.data = np.full((n, n), pixel_sr, dtype=np.float32)
    area.meta.photometry.pixelarea_steradians = pixel_sr
    area.meta.photometry.pixelarea_arcsecsq = spec.pixel_scale**2
    _meta(area, spec, "Pixel area (sr): uniform for the affine distortion")
    out["area"] = area

    phot = rdm.WfiImgPhotomRefModel.create_fake_data()
    apc = rdm.ApcorrRefModel.create_fake_data()
    phot_table: dict[str, Any] = {}
    ap_table: dict[str, Any] = {}
    bands = rbp.getBandpasses(AB_zeropoint=True, include_all_bands=True)
    for fe in spec.optical_elements:
        # DN/s -> MJy/sr: romanisim's e/s -> MJy/sr factor times the gain.
        photmjsr = float(rbp.etomjysr(fe, sca)) * p["gain"]
        bp = bands[rbp.roman2galsim_bandpass[fe]]
        wl = np.linspace(bp.blue_limit, bp.red_limit, 64)  # nm
        thr = np.array([bp(w) for w in wl])
        collecting = math.pi * (2.36 / 2) ** 2 * (1 - 0.32**2)
        phot_table[fe] = {
            "photmjsr": photmjsr,
            "uncertainty": 0.001 * photmjsr,
            "pixelareasr": pixel_sr,
            "collecting_area": float(collecting),
            "wavelength": (wl / 1000.0).astype(np.float32),
            "effective_area": (thr * collecting).astype(np.float32),
        }
        fr = np.array(spec.ee_fractions, dtype=np.float64)
        stamp = pixel_integrated_psf(simulator_psf(spec, fe), ipc_kernel=ipc.data)
        radii = encircled_energy_radii(stamp, spec.ee_fractions)
        ap_table[fe] = {
            "ap_corrections": 1.0 / fr,
            "ee_fractions": fr,
            "ee_radii": radii.astype(np.float64),
            "sky_background_rin": float(max(2.5 * radii[-1], 6.0)),
            "sky_background_rout": float(max(3.5 * radii[-1], 9.0)),
        }
        flat = rdm.FlatRefModel.create_fake_data(shape=(n, n))
        flat.data = maps["qe"].copy()
        flat.dq = np.zeros((n, n), dtype=np.uint32)
        flat.err = np.full((n, n), 1e-4, dtype=np.float32)
        _meta(flat, spec, f"Flat field {fe}: relative QE (gain and pixel area uniform)", fe)
        out[f"flat_{fe}"] = flat
        out[f"epsf_{fe}"] = _epsf_model(spec, fe, stamp)
    phot.phot_table = phot_table
    _meta(phot, spec, "Photometric zero points from romanisim's bandpasses")
    out["photom"] = phot
    apc.data = ap_table
    _meta(apc, spec, "Aperture corrections from galsim's Roman PSF encircled energy")
    out["apcorr"] = apc

    if spec.full_frame:
        refpix = rdm.RefpixRefModel.create_fake_data(shape=(N_CHANNELS, 2))
        # Coefficient length: rfft of one channel's padded read sequence (140 columns x rows).
        length = (CHANNEL_WIDTH + 12) * FRAME_PIXELS // 2 + 1
        zeros = np.zeros((N_CHANNELS, length), dtype=np.complex128)
        refpix.gamma, refpix.zeta, refpix.alpha = zeros, zeros.copy(), zeros.copy()
        _meta(refpix, spec, "Reference-pixel coefficients: zero (simulated data has no 1/f noise)")
        out["refpix"] = refpix
    return out


def make_reference_set(dest: str | Path, spec: RefSetSpec | None = None, **kwargs: Any) -> str:
    """Generate the set and stage it at ``dest`` (a folder or ``s3://…`` prefix); return dest.

    Files are written locally first and published one by one, the manifest last, so a set
    whose manifest exists is complete.
    """
    spec = spec or RefSetSpec(**kwargs)
    dest = str(dest)
    built = build_models(spec)
    with tempfile.TemporaryDirectory(prefix="refset-") as tmp:
        files: dict[str, dict[str, str]] = {}
        for key, model in built.items():
            name = f"roman_wfi_{spec.detector.lower()}_{key}.asdf"
            path = Path(tmp, name)
            model.save(path)
            files[key] = {"file": name, "sha256": sha256_file(path)}
        manifest = {
            "kind": "roman-platform reference-file set",
            "version": 1,
            "spec": spec.model_dump(mode="json"),
            "parameters": instrument_parameters(spec),
            "shape": list(spec.frame_shape),
            "subarray": not spec.full_frame,
            "files": files,
        }
        for key in files:
            transfer.publish(Path(tmp, files[key]["file"]), transfer.join(dest, files[key]["file"]))
        man = Path(tmp, MANIFEST)
        man.write_text(yaml.safe_dump(manifest, sort_keys=False))
        transfer.publish(man, transfer.join(dest, MANIFEST))
    return dest


def stage_reference_set(src: str | Path, dest: str) -> str:
    """Copy an existing set to ``dest`` (e.g. a local set into the shared store), manifest last."""
    refset = open_reference_set(src, verify=True)
    for entry in refset.manifest["files"].values():
        transfer.publish(refset.root / entry["file"], transfer.join(dest, entry["file"]))
    transfer.publish(refset.root / MANIFEST, transfer.join(dest, MANIFEST))
    return dest


def reference_data_mapping(refdir: str | Path) -> dict[str, str | None]:
    """romanisim ``parameters.reference_data`` entries for this set (file path per type).

    Only types romanisim knows; the flat is the first optical element of the set.
    """
    refset = open_reference_set(refdir)
    flats = [k for k in refset.manifest["files"] if k.startswith("flat_")]
    out: dict[str, str | None] = {}
    for key in SIMULATOR_REFTYPES:
        if key == "flat":
            out[key] = str(refset.path(flats[0])) if flats else None
        else:
            out[key] = str(refset.path(key)) if refset.has(key) else None
    return out
