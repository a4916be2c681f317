"""Photometric redshifts from Roman-only photometry by template fitting.

Templates: the Coleman–Wu–Weedman (CWW) E, Sbc, Scd and Im spectra that galsim ships, extended
into the UV and IR, plus interpolations between neighbours, redshifted on a grid and integrated
through the Roman bandpasses (galsim.roman's, AB-normalised) the same way a photon-counting
detector integrates: <f_nu> = ∫ f_nu T dλ/λ / ∫ T dλ/λ. The amplitude of each template is
fitted analytically (non-negative), so only colours drive the redshift.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np
from astropy.table import QTable

from .errors import CatalogInputError

CWW_TEMPLATES: tuple[str, ...] = (
    "CWW_E_ext.sed",
    "CWW_Sbc_ext.sed",
    "CWW_Scd_ext.sed",
    "CWW_Im_ext.sed",
)
N_INTERP = 3  # templates interpolated between each neighbouring CWW pair


def roman_bands() -> tuple[str, ...]:
    """Names of the Roman imaging optical elements galsim knows, e.g. 'F158' for H158."""
    return tuple(sorted(_bandpasses().keys()))


@functools.lru_cache(maxsize=1)
def _bandpasses() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import galsim.roman

    out = {}
    for name, bp in galsim.roman.getBandpasses(AB_zeropoint=True).items():
        if name in {"SNPrism", "Grism_0thOrder", "Grism_1stOrder", "Prism"}:
            continue
        wave = np.linspace(bp.blue_limit, bp.red_limit, 400)  # nm
        out[_element_name(name)] = (wave, np.asarray(bp(wave)))
    return out


def _element_name(galsim_name: str) -> str:
    """galsim's band names (H158, W146, R062) as Roman optical elements (F158, F146, F062)."""
    return "F" + galsim_name[1:] if galsim_name[0] in "RZYJHFKW" else galsim_name


def normalize_band(band: str) -> str:
    b = band.upper()
    if b in _bandpasses():
        return b
    alt = _element_name(b)
    if alt in _bandpasses():
        return alt
    raise CatalogInputError(
        f"unknown Roman optical element {band!r}; known: {', '.join(roman_bands())}"
    )


@functools.lru_cache(maxsize=1)
def _templates() -> tuple[tuple[str, np.ndarray, np.ndarray], ...]:
    """(name, wavelength nm, f_lambda) of the base and interpolated templates."""
    import galsim

    base = []
    for fname in CWW_TEMPLATES:
        path = os.path.join(galsim.meta_data.share_dir, "SEDs", fname)
        arr = np.loadtxt(path)
        wave_nm = arr[:, 0] / 10.0  # Angstrom -> nm
        base.append((fname.split("_")[1], wave_nm, arr[:, 1]))
    grid = base[0][1]
    resampled = [(n, np.interp(grid, w, f / np.interp(550.0, w, f))) for n, w, f in base]
    out: list[tuple[str, np.ndarray, np.ndarray]] = []
    for i, (name, f) in enumerate(resampled):
        out.append((name, grid, f))
        if i + 1 < len(resampled):
            nxt_name, nxt = resampled[i + 1]
            for k in range(1, N_INTERP + 1):
                a = k / (N_INTERP + 1)
                out.append((f"{name}-{nxt_name}:{a:.2f}", grid, (1 - a) * f + a * nxt))
    return tuple(out)


def template_names() -> list[str]:
    return [t[0] for t in _templates()]


def model_fluxes(bands: list[str], z_grid: np.ndarray) -> np.ndarray:
    """Band-averaged f_nu of each template at each redshift: shape (n_templates, n_z, n_bands)."""
    bps = [_bandpasses()[normalize_band(b)] for b in bands]
    temps = _templates()
    out = np.empty((len(temps), len(z_grid), len(bands)))
    for ti, (_, wave, flam) in enumerate(temps):
        for zi, z in enumerate(z_grid):
            for bi, (bw, bt) in enumerate(bps):
                rest = bw / (1.0 + z)
                f_lam = np.interp(rest, wave, flam, left=0.0, right=0.0)
                f_nu = f_lam * bw**2  # ∝ f_nu up to constants that cancel in colours
                num = np.trapezoid(f_nu * bt / bw, bw)
                den = np.trapezoid(bt / bw, bw)
                out[ti, zi, bi] = num / den
    return out


@dataclass(frozen=True)
class PhotozConfig:
    z_min: float = 0.0
    z_max: float = 4.0
    dz: float = 0.01
    min_bands: int = 3
    sys_err: float = 0.03  # fractional error added in quadrature: template mismatch, zero points


def photometric_redshifts(
    fluxes: np.ndarray, errors: np.ndarray, bands: list[str], config: PhotozConfig = PhotozConfig()
) -> QTable:
    """Best-fit redshift, 68% interval from the marginal likelihood, template and chi2 per source.

    ``fluxes``/``errors``: shape (n_sources, n_bands), any common unit. Bands with a NaN or
    non-positive error are ignored for that source; fewer than ``min_bands`` → NaN redshift.
    """
    fluxes = np.asarray(fluxes, float)
    errors = np.asarray(errors, float)
    if fluxes.shape != errors.shape or fluxes.ndim != 2 or fluxes.shape[1] != len(bands):
        raise CatalogInputError(
            "fluxes and errors must be (n_sources, n_bands) matching the band list"
        )
    z = np.arange(config.z_min, config.z_max + config.dz / 2, config.dz)
    models = model_fluxes(list(bands), z)  # (T, Z, B)
    n = fluxes.shape[0]
    zbest = np.full(n, np.nan)
    zlo = np.full(n, np.nan)
    zhi = np.full(n, np.nan)
    chi2best = np.full(n, np.nan)
    tbest = np.full(n, -1, dtype=int)
    names = template_names()
    for i in range(n):
        f, e = fluxes[i], errors[i]
        ok = np.isfinite(f) & np.isfinite(e) & (e > 0)
        if ok.sum() < config.min_bands:
            continue
        f, e = f[ok], e[ok]
        e = np.sqrt(e**2 + (config.sys_err * np.abs(f)) ** 2)
        m = models[:, :, ok]
        w = 1.0 / e**2
        amp = np.clip((m * f * w).sum(-1) / np.maximum((m * m * w).sum(-1), 1e-300), 0, None)
        chi2 = (((f - amp[..., None] * m) ** 2) * w).sum(-1)  # (T, Z)
        t_i, z_i = np.unravel_index(np.argmin(chi2), chi2.shape)
        zbest[i], chi2best[i], tbest[i] = z[z_i], chi2[t_i, z_i], t_i
        like = np.exp(-0.5 * (chi2 - chi2.min())).sum(0)  # marginal over templates
        cdf = np.cumsum(like) / like.sum()
        zlo[i] = np.interp(0.16, cdf, z)
        zhi[i] = np.interp(0.84, cdf, z)
    t = QTable()
    t["photoz"] = zbest
    t["photoz_lo"] = zlo
    t["photoz_hi"] = zhi
    t["photoz_chi2"] = chi2best
    t["photoz_template"] = [names[k] if k >= 0 else "" for k in tbest]
    return t
