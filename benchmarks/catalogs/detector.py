"""A full 4088x4088 Roman detector image with truth, for the catalog benchmarks.

galsim draws it: the Roman F158 PSF of SCA 7 (galsim.roman, offline), stars with a power-law
number count, Sersic galaxies, sky + read noise of a ~1 h exposure and source shot noise, in
microjansky per pixel (the same noise model as tests/catalogs/conftest.py). Stars are placed
from 16 pre-drawn sub-pixel phases of the PSF (1/4-pixel steps): drawing each star with galsim
costs 0.1 s here, the phase table 2 s in all. The result is cached in a .npz so that every
benchmark run (and every method) reads the same image.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SIZE = 4088
PIXEL_SCALE = 0.11
SKY_NOISE_UJY = 0.0035
UJY_TO_ELECTRONS = 7.0 * 600
BAND = "H158"
STAMP = 49  # odd: galsim centres a profile on the middle pixel
PHASES = 4


def wcs(size: int = SIZE):
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crpix = [size / 2 + 0.5, size / 2 + 0.5]
    w.wcs.cdelt = [-PIXEL_SCALE / 3600, PIXEL_SCALE / 3600]
    w.wcs.crval = [270.0, 66.0]
    return w


def psf_objects():
    import galsim.roman

    bp = galsim.roman.getBandpasses(AB_zeropoint=True)[BAND]
    return galsim.roman.getPSF(7, BAND, wavelength=bp.effective_wavelength, pupil_bin=8)


def psf_image(size: int = 63) -> np.ndarray:
    arr = (
        psf_objects()
        .drawImage(nx=size, ny=size, scale=PIXEL_SCALE, method="auto")
        .array.astype(float)
    )
    return arr / arr.sum()


def simulate(
    path: Path,
    *,
    n_stars: int = 2500,
    n_gal: int = 1000,
    seed: int = 1,
    size: int = SIZE,
    extra_epoch_flux: float | None = None,
) -> dict[str, np.ndarray]:
    """Draw (or read back from ``path``) the detector image and its truth."""
    if path.exists():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    import galsim
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    psf = psf_objects()
    phase = {}
    for j in range(PHASES):
        for i in range(PHASES):
            off = galsim.PositionD(i / PHASES, j / PHASES)
            phase[i, j] = psf.drawImage(
                nx=STAMP, ny=STAMP, scale=PIXEL_SCALE, offset=off, method="auto"
            ).array
    image = np.zeros((size, size))
    n = n_stars + n_gal
    m = 4
    x = rng.uniform(m + STAMP, size - 1 - m - STAMP, n)
    y = rng.uniform(m + STAMP, size - 1 - m - STAMP, n)
    is_star = np.arange(n) < n_stars
    # dN/dm ~ 10^(0.3 m) between 18 and 25.5 (more faint than bright), galaxies 20-25
    u = rng.random(n)
    lo, hi = np.where(is_star, 18.0, 20.0), np.where(is_star, 25.5, 25.0)
    a = 0.3 * np.log(10)
    mag = np.log(np.exp(a * lo) + u * (np.exp(a * hi) - np.exp(a * lo))) / a
    flux = 10 ** ((23.9 - mag) / 2.5)
    # Stars: integer pixel + quarter-pixel phase; the stamp's middle pixel is (STAMP // 2) both ways.
    for k in np.where(is_star)[0]:
        ix, iy = int(np.floor(x[k])), int(np.floor(y[k]))
        pi, pj = int((x[k] - ix) * PHASES), int((y[k] - iy) * PHASES)
        x[k], y[k] = ix + pi / PHASES, iy + pj / PHASES
        h = STAMP // 2
        image[iy - h : iy + h + 1, ix - h : ix + h + 1] += flux[k] * phase[pi, pj]
    hlr = np.clip(0.45 * 10 ** (-0.15 * (mag - 21.0)) * rng.lognormal(0, 0.25, n), 0.15, 0.9)
    gimg = galsim.ImageD(size, size, scale=PIXEL_SCALE)
    for k in tqdm(np.where(~is_star)[0], desc="galaxies", disable=not os.isatty(2)):
        prof = galsim.Sersic(
            n=float(rng.choice([1.0, 2.5])), half_light_radius=float(hlr[k]), flux=float(flux[k])
        )
        prof = prof.shear(
            q=float(rng.uniform(0.4, 1.0)), beta=float(rng.uniform(0, 180)) * galsim.degrees
        )
        stamp = galsim.Convolve(prof, psf).drawImage(
            nx=STAMP,
            ny=STAMP,
            scale=PIXEL_SCALE,
            center=galsim.PositionD(x[k] + 1, y[k] + 1),
            method="auto",
        )
        b = stamp.bounds & gimg.bounds
        gimg[b] += stamp[b]
    clean = image + gimg.array
    var = SKY_NOISE_UJY**2 + np.clip(clean, 0, None) / UJY_TO_ELECTRONS
    err = np.sqrt(var).astype(np.float32)
    data = (clean + rng.normal(0, 1, clean.shape) * err).astype(np.float32)
    out = {
        "data": data,
        "err": err,
        "clean": clean.astype(np.float32),
        "x": x,
        "y": y,
        "mag": mag,
        "is_star": is_star,
        "psf": psf_image(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def noisy_epoch(
    sim: dict[str, np.ndarray], seed: int, add: tuple[float, float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Another exposure of the same scene on the same grid: fresh noise (and an optional new
    point source (x, y, flux) drawn with the PSF at an integer pixel)."""
    rng = np.random.default_rng(seed)
    clean = sim["clean"].astype(float)
    if add is not None:
        x, y, f = add
        psf = sim["psf"]
        h = psf.shape[0] // 2
        clean[int(y) - h : int(y) + h + 1, int(x) - h : int(x) + h + 1] += f * psf
    err = np.sqrt(SKY_NOISE_UJY**2 + np.clip(clean, 0, None) / UJY_TO_ELECTRONS)
    return (clean + rng.normal(0, 1, clean.shape) * err).astype(np.float32), err.astype(np.float32)
