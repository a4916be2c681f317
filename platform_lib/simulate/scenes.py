"""Source catalogs (scenes) in romanisim's table format, from parameters or distributions.

romanisim renders an astropy Table with columns ``ra, dec`` (deg), ``type`` (``PSF`` or
``SER``), ``n`` (Sérsic index), ``half_light_radius`` (arcsec), ``pa`` (deg), ``ba`` and one
flux column per optical element in maggies. Everything here returns that table, plus the
truth columns we need later (``source_id``, ``mag_<ref>``, ``sed``, ``redshift``), which
romanisim ignores. Fluxes in the different elements come from an SED (galsim's CWW galaxy
templates, blackbodies for stars, or flat in f_nu) folded through each element's throughput,
so colours are physical rather than random.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache, lru_cache

import numpy as np
from numpy.typing import ArrayLike

from .bands import IMAGING_ELEMENTS, bandpass, check_element
from .errors import SimulationInputError

REQUIRED_COLUMNS: tuple[str, ...] = ("ra", "dec", "type", "n", "half_light_radius", "pa", "ba")
GALAXY_TEMPLATES: tuple[str, ...] = ("CWW_E_ext", "CWW_Sbc_ext", "CWW_Scd_ext", "CWW_Im_ext")
# galsim's Sersic profile is defined for 0.3 <= n <= 6.2
SERSIC_RANGE = (0.3, 6.2)


# --------------------------------------------------------------------------- validation
def validate_catalog(table, elements: Sequence[str]) -> None:
    """Raise SimulationInputError unless ``table`` can be rendered in ``elements``."""
    elements = [check_element(e) for e in elements]
    missing = [c for c in (*REQUIRED_COLUMNS, *elements) if c not in table.colnames]
    if missing:
        raise SimulationInputError(
            f"catalog is missing column(s) {', '.join(missing)}; a romanisim catalog needs "
            f"{', '.join(REQUIRED_COLUMNS)} and one flux column (maggies) per optical element"
        )
    if len(table) == 0:
        return
    kinds = set(np.char.strip(np.asarray(table["type"]).astype(str)))
    if not kinds <= {"PSF", "SER"}:
        raise SimulationInputError(f"catalog 'type' must be PSF or SER, found {sorted(kinds)}")
    for col in ("ra", "dec", *elements):
        values = np.asarray(table[col], dtype=float)
        if not np.all(np.isfinite(values)):
            raise SimulationInputError(f"catalog column {col!r} has non-finite values")
    for element in elements:
        flux = np.asarray(table[element], dtype=float)
        if np.any(flux < 0):
            bad = int(np.argmax(flux < 0))
            raise SimulationInputError(
                f"negative flux in column {element!r} (row {bad}: {flux[bad]}); fluxes are "
                "maggies and must be >= 0"
            )
    ser = np.char.strip(np.asarray(table["type"]).astype(str)) == "SER"
    if ser.any():
        n = np.asarray(table["n"], dtype=float)[ser]
        hlr = np.asarray(table["half_light_radius"], dtype=float)[ser]
        ba = np.asarray(table["ba"], dtype=float)[ser]
        if np.any((n < SERSIC_RANGE[0]) | (n > SERSIC_RANGE[1])):
            raise SimulationInputError(f"Sérsic index must lie in {SERSIC_RANGE}")
        if np.any(hlr <= 0):
            raise SimulationInputError("half_light_radius must be > 0 for SER sources")
        if np.any((ba <= 0) | (ba > 1)):
            raise SimulationInputError("ba must lie in (0, 1]")


# --------------------------------------------------------------------------- SEDs and colours
@cache
def _sed(name: str):
    import galsim

    if name == "flat":
        return galsim.SED(galsim.LookupTable([100, 3000], [1.0, 1.0]), "nm", "fnu")
    if name.startswith("bb"):
        temperature = float(name[2:])
        wave = np.linspace(100, 3000, 600)  # nm
        lam = wave * 1e-9
        hc_kt = 6.62607015e-34 * 2.99792458e8 / (1.380649e-23 * temperature)
        flam = lam**-5 / np.expm1(hc_kt / lam)
        return galsim.SED(galsim.LookupTable(wave, flam / flam.max()), "nm", "flambda")
    if name in GALAXY_TEMPLATES:
        import os

        path = os.path.join(galsim.meta_data.share_dir, "SEDs", f"{name}.sed")
        return galsim.SED(path, "A", "flambda")
    raise SimulationInputError(
        f"unknown SED {name!r}; use 'flat', 'bb<temperature K>' or one of {GALAXY_TEMPLATES}"
    )


@lru_cache(maxsize=4096)
def _ab_mag(sed_name: str, redshift: float, element: str) -> float:
    sed = _sed(sed_name).atRedshift(redshift) if redshift else _sed(sed_name)
    return float(sed.calculateMagnitude(bandpass(element)))


def sed_colors(sed_name: str, redshift: float, ref_element: str, elements: Sequence[str]) -> dict:
    """AB colour ``m(element) - m(ref_element)`` of an SED at a redshift, per element."""
    ref = _ab_mag(sed_name, round(float(redshift), 3), check_element(ref_element))
    return {
        e: _ab_mag(sed_name, round(float(redshift), 3), check_element(e)) - ref for e in elements
    }


def _flux_columns(mags, seds, redshifts, ref_element, elements) -> dict[str, np.ndarray]:
    """Maggies per element for sources of AB magnitude ``mags`` in ``ref_element``."""
    out = {e: np.empty(len(mags), dtype=np.float32) for e in elements}
    # colours are computed once per distinct (SED, redshift grid point)
    keys = list(zip(seds, np.round(redshifts, 2)))
    for key in set(keys):
        rows = np.array([k == key for k in keys])
        colors = sed_colors(key[0], key[1], ref_element, elements)
        for e in elements:
            out[e][rows] = 10 ** (-0.4 * (np.asarray(mags)[rows] + colors[e]))
    return out


# --------------------------------------------------------------------------- scenes
def _table(columns: Mapping[str, np.ndarray]):
    from astropy.table import Table

    # romanisim multiplies ra/dec by u.deg itself: the columns must stay unitless.
    t = Table(dict(columns))
    t.meta["units"] = {
        "ra": "deg",
        "dec": "deg",
        "half_light_radius": "arcsec",
        "pa": "deg",
        "fluxes": "maggies (AB flux / 3631 Jy)",
    }
    return t


def sources(
    ra: ArrayLike,
    dec: ArrayLike,
    mag: ArrayLike,
    *,
    ref_element: str = "F158",
    elements: Sequence[str] = IMAGING_ELEMENTS,
    kind: ArrayLike = "PSF",
    sersic_n: ArrayLike = 1.0,
    half_light_radius: ArrayLike = 0.0,
    pa: ArrayLike = 0.0,
    ba: ArrayLike = 1.0,
    sed: ArrayLike = "flat",
    redshift: ArrayLike = 0.0,
    first_id: int = 0,
):
    """A catalog from the parameters of individual sources (AB ``mag`` in ``ref_element``)."""
    ref_element = check_element(ref_element)
    elements = list(dict.fromkeys([check_element(e) for e in elements] + [ref_element]))
    ras, decs, mags = (np.atleast_1d(np.asarray(x, dtype=float)) for x in (ra, dec, mag))
    n = len(ras)
    if not (len(decs) == len(mags) == n):
        raise SimulationInputError("ra, dec and mag must have the same length")
    if not np.all(np.isfinite(mags)):
        raise SimulationInputError("magnitudes must be finite")

    def per(value, dtype=float):
        arr = np.asarray(value, dtype=dtype)
        return np.full(n, arr, dtype=dtype) if arr.ndim == 0 else arr

    seds = per(sed, dtype=object)
    z = per(redshift)
    cols = {
        "source_id": np.arange(first_id, first_id + n, dtype=np.int64),
        "ra": ras,
        "dec": decs,
        "type": per(kind, dtype="U3"),
        "n": per(sersic_n).astype(np.float32),
        "half_light_radius": per(half_light_radius).astype(np.float32),
        "pa": per(pa).astype(np.float32),
        "ba": per(ba).astype(np.float32),
        f"mag_{ref_element}": mags.astype(np.float32),
        "sed": seds.astype(str),
        "redshift": z.astype(np.float32),
    }
    cols.update(_flux_columns(mags, list(seds), z, ref_element, elements))
    table = _table(cols)
    validate_catalog(table, elements)
    return table


def _positions(
    center: tuple[float, float], radius: float, n: int, rng
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform positions in a spherical cap (radius in degrees)."""
    ra0, dec0 = np.radians(center)
    cos_r = np.cos(np.radians(radius))
    z = rng.uniform(cos_r, 1.0, n)
    phi = rng.uniform(0, 2 * np.pi, n)
    s = np.sqrt(1 - z**2)
    # cap around the pole, rotated to the center
    x, y = s * np.cos(phi), s * np.sin(phi)
    dec = np.arcsin(z * np.sin(dec0) - x * np.cos(dec0))
    ra = ra0 + np.arctan2(y, z * np.cos(dec0) + x * np.sin(dec0))
    return np.degrees(ra) % 360, np.degrees(dec)


def _power_law_mags(n: int, bright: float, faint: float, slope: float, rng) -> np.ndarray:
    """Magnitudes with dN/dm ∝ 10**(slope m) between bright and faint (inverse CDF)."""
    if faint <= bright:
        raise SimulationInputError("faint magnitude limit must be fainter than the bright one")
    u = rng.uniform(size=n)
    a, b = 10 ** (slope * bright), 10 ** (slope * faint)
    return np.log10(a + u * (b - a)) / slope


def _count(n: int | None, density: float | None, radius: float) -> int:
    if (n is None) == (density is None):
        raise SimulationInputError("give exactly one of n (sources) or density (per deg^2)")
    if n is None:
        area = 2 * np.pi * (1 - np.cos(np.radians(radius))) * (180 / np.pi) ** 2
        n = int(round(density * area))
    if n < 0:
        raise SimulationInputError("the number of sources must be >= 0")
    return int(n)


def star_field(
    center: tuple[float, float],
    radius: float,
    *,
    n: int | None = None,
    density: float | None = None,
    mag_range: tuple[float, float] = (18.0, 26.0),
    slope: float = 0.3,
    ref_element: str = "F158",
    elements: Sequence[str] = IMAGING_ELEMENTS,
    temperatures: tuple[float, float] = (3500.0, 10000.0),
    seed: int = 0,
    first_id: int = 0,
):
    """Stars: dN/dm ∝ 10**(slope m) (star counts), blackbody colours of random temperature."""
    rng = np.random.default_rng(seed)
    count = _count(n, density, radius)
    ra, dec = _positions(center, radius, count, rng)
    mag = _power_law_mags(count, *mag_range, slope, rng)
    # a coarse temperature grid keeps the number of distinct SEDs (and colour integrals) small
    temps = np.round(rng.uniform(*temperatures, count), -2)
    return sources(
        ra,
        dec,
        mag,
        ref_element=ref_element,
        elements=elements,
        kind="PSF",
        sed=[f"bb{t:.0f}" for t in temps],
        first_id=first_id,
    )


def galaxy_field(
    center: tuple[float, float],
    radius: float,
    *,
    n: int | None = None,
    density: float | None = None,
    mag_range: tuple[float, float] = (20.0, 27.0),
    slope: float = 0.33,
    size_at_mag: tuple[float, float] = (0.3, 24.0),
    size_slope: float = 0.15,
    size_scatter_dex: float = 0.15,
    disk_fraction: float = 0.7,
    redshift_range: tuple[float, float] = (0.2, 2.5),
    ref_element: str = "F158",
    elements: Sequence[str] = IMAGING_ELEMENTS,
    seed: int = 0,
    first_id: int = 0,
):
    """Galaxies from number counts, a size–magnitude relation and a Sérsic-index mixture.

    * counts: dN/dm ∝ 10**(slope m) between the magnitude limits;
    * sizes: log10 r_e = log10 r0 - size_slope (m - m0) with Gaussian scatter in dex
      (``size_at_mag = (r0 arcsec, m0)``), so brighter galaxies are larger;
    * shapes: a disk population (n ~ 1, spiral/irregular SEDs) and a spheroid population
      (n ~ 4, elliptical SED), axis ratios from a Beta law, random position angles;
    * colours: the population's CWW template at a redshift uniform in ``redshift_range``.
    """
    rng = np.random.default_rng(seed)
    count = _count(n, density, radius)
    ra, dec = _positions(center, radius, count, rng)
    mag = _power_law_mags(count, *mag_range, slope, rng)
    r0, m0 = size_at_mag
    hlr = 10 ** (np.log10(r0) - size_slope * (mag - m0) + rng.normal(0, size_scatter_dex, count))
    hlr = np.clip(hlr, 0.02, 5.0)
    disk = rng.uniform(size=count) < disk_fraction
    sersic = np.where(disk, rng.normal(1.0, 0.2, count), rng.normal(4.0, 0.5, count))
    sersic = np.clip(sersic, 0.5, 6.0)
    ba = np.clip(rng.beta(4, 2, count), 0.15, 1.0)
    seds = np.where(disk, rng.choice(GALAXY_TEMPLATES[1:], count), GALAXY_TEMPLATES[0])
    z = np.round(rng.uniform(*redshift_range, count), 1)
    return sources(
        ra,
        dec,
        mag,
        ref_element=ref_element,
        elements=elements,
        kind="SER",
        sersic_n=sersic,
        half_light_radius=hlr,
        pa=rng.uniform(0, 180, count),
        ba=ba,
        sed=list(seds),
        redshift=z,
        first_id=first_id,
    )


def combine(*tables):
    """Stack catalogs, renumbering ``source_id`` so ids stay unique."""
    from astropy.table import vstack

    out = vstack([t for t in tables if len(t)], metadata_conflicts="silent")
    out["source_id"] = np.arange(len(out), dtype=np.int64)
    return out
