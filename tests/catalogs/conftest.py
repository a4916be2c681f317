"""A small simulated Roman field with known truth, for validating the catalogs.

Drawn with galsim (the field's engine) independently of platform_lib's code: Roman PSFs per
band from galsim.roman, stars with flat-f_nu spectra, Sersic galaxies with CWW spectra at known
redshifts (magnitudes from galsim's own SED x bandpass integration), per-pixel noise of a
~1 h exposure (sky + read noise) plus source shot noise, images in microjansky per pixel.
The image WCS carries a deliberate 0.3" pointing error; the Gaia-like reference catalog holds
the true star positions with 0.2 mas errors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest
from astropy.table import Table
from astropy.wcs import WCS

BANDS = ("R062", "Z087", "Y106", "J129", "H158", "F184")
PIXEL_SCALE = 0.11  # arcsec
SIZE = 384
RA0, DEC0 = 270.0, 66.0
SKY_NOISE_UJY = 0.0035  # per-pixel sigma, uJy: 5-sigma point-source depth near AB 26.3
UJY_TO_ELECTRONS = 7.0 * 600  # e- per uJy over the exposure (shot noise only)
POINTING_ERROR_ARCSEC = (0.25, -0.18)


def make_wcs(offset_arcsec: tuple[float, float] = (0.0, 0.0)) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crpix = [SIZE / 2 + 0.5, SIZE / 2 + 0.5]
    w.wcs.cdelt = [-PIXEL_SCALE / 3600, PIXEL_SCALE / 3600]
    w.wcs.crval = [
        RA0 + offset_arcsec[0] / 3600 / np.cos(np.radians(DEC0)),
        DEC0 + offset_arcsec[1] / 3600,
    ]
    return w


@dataclass
class Field:
    images: dict[str, np.ndarray]
    errors: dict[str, np.ndarray]
    psfs: dict[str, np.ndarray]
    wcs: WCS  # the (slightly wrong) image WCS
    true_wcs: WCS
    truth: Table
    reference: Table


def _psf_image(band: str, bandpasses: dict, size: int = 63) -> tuple[object, np.ndarray]:
    import galsim
    import galsim.roman

    bp = bandpasses[band]
    psf = galsim.roman.getPSF(7, band, wavelength=bp.effective_wavelength, pupil_bin=8)
    img = psf.drawImage(nx=size, ny=size, scale=PIXEL_SCALE, method="auto")
    arr = img.array.astype(float)
    return psf, arr / arr.sum()


def simulate_field(
    seed: int = 42, n_stars: int = 30, n_gal: int = 50, bands: tuple[str, ...] = BANDS
) -> Field:
    import galsim
    import galsim.roman

    rng = np.random.default_rng(seed)
    bandpasses = galsim.roman.getBandpasses(AB_zeropoint=True)
    margin = 12
    n = n_stars + n_gal
    x = rng.uniform(margin, SIZE - 1 - margin, n)
    y = rng.uniform(margin, SIZE - 1 - margin, n)
    is_star = np.arange(n) < n_stars
    mag_h = np.where(is_star, rng.uniform(18.5, 24.5, n), rng.uniform(20.0, 24.0, n))
    z = np.where(is_star, 0.0, rng.uniform(0.2, 2.5, n))
    tmpl_names = ["CWW_E_ext.sed", "CWW_Sbc_ext.sed", "CWW_Scd_ext.sed", "CWW_Im_ext.sed"]
    tmpl = rng.integers(0, 4, n)
    hlr = np.where(
        is_star,
        0.0,
        np.clip(0.45 * 10 ** (-0.15 * (mag_h - 21.0)) * rng.lognormal(0, 0.25, n), 0.18, 0.9),
    )
    sersic = np.where(rng.random(n) < 0.5, 1.0, 2.5)
    q = rng.uniform(0.5, 1.0, n)
    beta = rng.uniform(0, 180, n)
    seds = {
        name: galsim.SED(
            os.path.join(galsim.meta_data.share_dir, "SEDs", name),
            wave_type="Ang",
            flux_type="flambda",
        )
        for name in tmpl_names
    }
    flat = galsim.SED("1", wave_type="nm", flux_type="fnu")
    mags = {b: np.zeros(n) for b in bands}
    for i in range(n):
        sed = flat if is_star[i] else seds[tmpl_names[tmpl[i]]].atRedshift(z[i])
        href = sed.calculateMagnitude(bandpasses["H158"])
        for b in bands:
            mags[b][i] = mag_h[i] + (sed.calculateMagnitude(bandpasses[b]) - href)

    true_wcs = make_wcs()
    wcs = make_wcs(POINTING_ERROR_ARCSEC)
    ra, dec = true_wcs.pixel_to_world_values(x, y)
    images, errors, psfs = {}, {}, {}
    for b in bands:
        psf_obj, psf_arr = _psf_image(b, bandpasses)
        psfs[b] = psf_arr
        image = galsim.ImageD(SIZE, SIZE, scale=PIXEL_SCALE)
        for i in range(n):
            flux = 10 ** ((23.9 - mags[b][i]) / 2.5)
            if is_star[i]:
                prof = galsim.DeltaFunction(flux=flux)
            else:
                prof = galsim.Sersic(n=float(sersic[i]), half_light_radius=float(hlr[i]), flux=flux)
                prof = prof.shear(q=float(q[i]), beta=float(beta[i]) * galsim.degrees)
            conv = galsim.Convolve(prof, psf_obj)
            # galsim's image origin is 1-based: (x+1, y+1) is 0-based pixel (x, y).
            stamp = conv.drawImage(
                nx=64,
                ny=64,
                scale=PIXEL_SCALE,
                center=galsim.PositionD(x[i] + 1, y[i] + 1),
                method="auto",
            )
            bounds = stamp.bounds & image.bounds
            if bounds.isDefined():
                image[bounds] += stamp[bounds]
        clean = image.array.copy()
        shot_var = np.clip(clean, 0, None) / UJY_TO_ELECTRONS
        var = SKY_NOISE_UJY**2 + shot_var
        images[b] = clean + rng.normal(0, 1, clean.shape) * np.sqrt(var)
        errors[b] = np.sqrt(var)
    truth = Table(
        {
            "x": x,
            "y": y,
            "ra": ra,
            "dec": dec,
            "is_star": is_star,
            "z": z,
            "hlr": hlr,
            "template": [tmpl_names[t] if not s else "star" for t, s in zip(tmpl, is_star)],
        }
    )
    for b in bands:
        truth[f"{b}_mag"] = mags[b]
    ref = Table(
        {
            "ra": ra[is_star]
            + rng.normal(0, 0.2e-3 / 3600, is_star.sum()) / np.cos(np.radians(DEC0)),
            "dec": dec[is_star] + rng.normal(0, 0.2e-3 / 3600, is_star.sum()),
        }
    )
    return Field(images, errors, psfs, wcs, true_wcs, truth, ref)


@pytest.fixture(scope="session")
def field() -> Field:
    return simulate_field()


@dataclass
class Epochs:
    images: list[np.ndarray]
    errors: list[np.ndarray]
    mjds: list[float]
    psf: np.ndarray
    wcs: WCS
    sources: Table  # static truth: x, y, ra, dec, flux (uJy), variable (bool), amplitude
    transient: tuple[float, float, float]  # x, y, flux (uJy) of the new source in the last epoch


def simulate_epochs(
    seed: int = 7,
    n_epochs: int = 6,
    band: str = "H158",
    size: int = 192,
    n_stars: int = 25,
    n_variable: int = 5,
) -> Epochs:
    """One band, several epochs of one field: constant stars, sinusoidal variables (0.3 mag
    amplitude, random phase) and one transient that appears only in the last epoch."""
    import galsim
    import galsim.roman

    rng = np.random.default_rng(seed)
    bandpasses = galsim.roman.getBandpasses(AB_zeropoint=True)
    psf_obj, psf_arr = _psf_image(band, bandpasses)
    margin = 14
    x = rng.uniform(margin, size - 1 - margin, n_stars)
    y = rng.uniform(margin, size - 1 - margin, n_stars)
    mag = rng.uniform(19.5, 22.5, n_stars)
    flux = 10 ** ((23.9 - mag) / 2.5)
    variable = np.zeros(n_stars, bool)
    variable[:n_variable] = True
    period = rng.uniform(3.0, 9.0, n_stars)
    phase = rng.uniform(0, 2 * np.pi, n_stars)
    amp_mag = np.where(variable, 0.3, 0.0)
    tx, ty = rng.uniform(margin, size - 1 - margin, 2)
    t_flux = 10 ** ((23.9 - 21.5) / 2.5)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crpix = [size / 2 + 0.5, size / 2 + 0.5]
    w.wcs.cdelt = [-PIXEL_SCALE / 3600, PIXEL_SCALE / 3600]
    w.wcs.crval = [RA0, DEC0]

    def draw(points: list[tuple[float, float, float]]) -> np.ndarray:
        image = galsim.ImageD(size, size, scale=PIXEL_SCALE)
        for xi, yi, fi in points:
            stamp = galsim.Convolve(galsim.DeltaFunction(flux=fi), psf_obj).drawImage(
                nx=48,
                ny=48,
                scale=PIXEL_SCALE,
                center=galsim.PositionD(xi + 1, yi + 1),
                method="auto",
            )
            b = stamp.bounds & image.bounds
            if b.isDefined():
                image[b] += stamp[b]
        return image.array.copy()

    mjds = [60000.0 + 2.0 * k for k in range(n_epochs)]
    unit = {i: draw([(x[i], y[i], 1.0)]) for i in range(n_stars)}  # one unit-flux stamp per star
    transient = draw([(tx, ty, t_flux)])
    images, errors = [], []
    for k, mjd in enumerate(mjds):
        f_k = flux * 10 ** (-0.4 * amp_mag * np.sin(2 * np.pi * mjd / period + phase))
        clean = sum(f_k[i] * unit[i] for i in range(n_stars))
        if k == n_epochs - 1:
            clean = clean + transient
        var = SKY_NOISE_UJY**2 + np.clip(clean, 0, None) / UJY_TO_ELECTRONS
        images.append(clean + rng.normal(0, 1, clean.shape) * np.sqrt(var))
        errors.append(np.sqrt(var))
    ra, dec = w.pixel_to_world_values(x, y)
    sources = Table(
        {
            "source_id": np.arange(n_stars),
            "x": x,
            "y": y,
            "ra": ra,
            "dec": dec,
            "flux": flux,
            "variable": variable,
        }
    )
    return Epochs(images, errors, mjds, psf_arr, w, sources, (float(tx), float(ty), float(t_flux)))


@pytest.fixture(scope="session")
def epochs() -> Epochs:
    return simulate_epochs()


# ------------------------------------------------------------------ store-facing layer
# A tiny sample store made by the data area's own sample maker (romanisim-style L2 products of
# one detector cutout, two optical elements, two dithered epochs, plus the PSF library), built
# once per session: it is the slowest set-up of this folder.
SAMPLE_BANDS = ("F158", "F087")


@dataclass
class SampleStore:
    root: str  # a local folder: the store's URL
    products: dict[tuple[int, str], str]  # (epoch 1-based, optical element) -> L2 path in the store
    psf: list[str]  # PSF library paths in the store (found through the store's product index)


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> SampleStore:
    from platform_lib.sample import SampleSpec, make_sample

    root = tmp_path_factory.mktemp("catalog-sample")
    spec = SampleSpec(
        detectors=("WFI01",), optical_elements=SAMPLE_BANDS, epochs=2, size=128, nstars=150
    )
    made = make_sample(
        str(root), spec, progress=False
    )  # indexed: the PSF library is found through it
    products = {}
    for rel in made["products"]:
        if "/L2/" not in rel:
            continue
        name = rel.rsplit("/", 1)[1]  # r{program:05}{visit:03}{exposure:04}_wfi01_{oe}_cal.asdf
        epoch = int(name[6:9])
        products[(epoch, name.split("_")[2].upper())] = rel
    psf = [str(p.relative_to(root)) for p in sorted((root / "sample" / "psf").glob("*.asdf"))]
    return SampleStore(str(root), products, psf)


@pytest.fixture(scope="module")
def dask_client():
    """One local Dask cluster for a whole module: ``platform_lib.compute.get_client`` reuses the
    active client, so every CLI call below runs its tasks on these worker processes instead of
    paying for a new cluster each time."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
