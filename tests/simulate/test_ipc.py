"""Inter-pixel capacitance: what this layer applies and romanisim 0.14's make-image drops.

The figures quoted in docs/simulation.md ("IPC") come from this test (``-s`` prints them):
a noiseless-read star's peak pixel and the nearest-neighbour correlation of flat-field
noise, with IPC on and off, through ``make_l1`` (romanisim's default kernel).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from platform_lib.simulate import InstrumentEffects, make_l1, read_pattern

SIDE = 65  # odd: galsim centres the star on the middle pixel


def _last_minus_first(counts: np.ndarray, ipc: bool, seed: int) -> np.ndarray:
    effects = dataclasses.replace(InstrumentEffects.none(), ipc=ipc)
    refdata = {"gain": 2.0, "readnoise": 0.0, "saturation": 1e12}
    resultants, _ = make_l1(counts, read_pattern(4), effects=effects, refdata=refdata, seed=seed)
    return np.asarray(resultants[-1], float) - np.asarray(resultants[0], float)


def test_ipc_lowers_star_peak_and_correlates_neighbours() -> None:
    import galsim.roman

    psf = galsim.roman.getPSF(7, "H158", pupil_bin=8, wavelength=1580.0)
    star = np.round(2e5 * psf.drawImage(nx=SIDE, ny=SIDE, scale=0.11, method="auto").array)
    peak = {ipc: _last_minus_first(star, ipc, seed=4).max() for ipc in (False, True)}
    flat = np.random.default_rng(1).poisson(2000.0, (SIDE, SIDE)).astype(float)
    corr, var = {}, {}
    for ipc in (False, True):
        d = _last_minus_first(flat, ipc, seed=5)
        d -= d.mean()
        corr[ipc] = float((d[:, 1:] * d[:, :-1]).mean() / d.var())
        var[ipc] = float(d.var())
    ratio = peak[True] / peak[False]
    print(
        f"IPC: star peak x{ratio:.3f}; neighbour noise correlation {corr[False]:.3f} -> "
        f"{corr[True]:.3f}; per-pixel noise variance x{var[True] / var[False]:.3f}"
    )
    # romanisim's kernel keeps ~1-2% per side neighbour: the peak drops by a few percent
    assert 0.90 < ratio < 0.99
    assert abs(corr[False]) < 0.03
    assert corr[True] > 0.04
    assert var[True] < 0.97 * var[False]
