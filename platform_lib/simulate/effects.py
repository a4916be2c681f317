"""Instrument effects and the electrons -> L1 resultants step.

The seed's instrumental simulator: individual reads grouped into resultants by the MA table,
with cosmic rays, non-linearity, inter-pixel capacitance, persistence, read noise and dark
current. Each effect is romanisim's own model; :class:`InstrumentEffects` only says which are
on and with what parameters, and :func:`make_l1` is romanisim's ``l1.make_l1`` with the
faster exact apportioning of :mod:`.apportion` (romanisim's per-read one is still used when
an inverse non-linearity is active, see there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import SimulationInputError


def read_pattern(ma_table: int) -> list[list[int]]:
    """The read pattern (read indices per resultant) of an MA table number, or a clear error."""
    from romanisim.models import parameters

    try:
        number = int(ma_table)
    except (TypeError, ValueError):
        number = None
    if number not in parameters.read_pattern:
        known = ", ".join(str(k) for k in sorted(parameters.read_pattern))
        raise SimulationInputError(f"MA table {ma_table!r} does not exist; known tables: {known}")
    return [list(r) for r in parameters.read_pattern[number]]


@dataclass
class InstrumentEffects:
    """Which detector effects to simulate (all romanisim models) and their parameters.

    ``cosmic_rays``: ``True`` for romanisim's defaults, a dict to override them (e.g.
    ``{"flux": 8}`` hits cm^-2 s^-1), ``False`` for none. ``persistence``: a
    ``romanisim.persistence.Persistence`` carried from earlier exposures of the same
    detector, ``True`` for a fresh one, ``False`` for none. ``read_noise`` (DN), ``dark``
    (electrons/s), ``gain`` (electrons/DN), ``saturation`` (DN) override the reference data
    when given. ``ipc``: romanisim's default kernel (or the reference file's) when True.
    ``nonlinearity``: apply the (inverse) linearity reference files when the reference data
    name them. ``sky``: add the zodiacal + thermal background.
    """

    cosmic_rays: bool | dict = True
    persistence: Any = False
    ipc: bool = True
    nonlinearity: bool = True
    read_noise: float | None = None
    dark: float | None = None
    gain: float | None = None
    saturation: float | None = None
    sky: bool = True
    pedestal: float | None = None
    pedestal_noise: float | None = None

    @classmethod
    def none(cls, **overrides: Any) -> InstrumentEffects:
        """No cosmic rays, persistence, IPC, non-linearity, dark, read noise or sky."""
        base: dict[str, Any] = dict(
            cosmic_rays=False,
            persistence=False,
            ipc=False,
            nonlinearity=False,
            read_noise=0.0,
            dark=0.0,
            sky=False,
            pedestal=0.0,
            pedestal_noise=0.0,
        )
        base.update(overrides)
        return cls(**base)

    def crparam(self) -> dict | None:
        if self.cosmic_rays is False or self.cosmic_rays is None:
            return None
        if self.cosmic_rays is True:
            return {}
        if isinstance(self.cosmic_rays, dict):
            from romanisim.models import parameters

            unknown = set(self.cosmic_rays) - set(parameters.cr) - {"flux"}
            if unknown:
                raise SimulationInputError(f"unknown cosmic-ray parameter(s) {sorted(unknown)}")
            if float(self.cosmic_rays.get("flux", 1.0)) < 0:
                raise SimulationInputError("cosmic-ray flux must be >= 0")
            return dict(self.cosmic_rays)
        raise SimulationInputError("cosmic_rays must be True, False or a dict of parameters")

    def persistence_model(self):
        import romanisim.persistence

        if self.persistence is True:
            return romanisim.persistence.Persistence()
        if self.persistence is False or self.persistence is None:
            return None
        if isinstance(self.persistence, romanisim.persistence.Persistence):
            return self.persistence
        raise SimulationInputError("persistence must be True, False or a romanisim Persistence")


def make_l1(
    counts: np.ndarray,
    pattern: list[list[int]],
    *,
    effects: InstrumentEffects,
    refdata: dict,
    tstart=None,
    persistence=None,
    seed: int = 0,
    apportioner: str = "fast",
    cut=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Total electrons image -> (resultants in DN, dq), as romanisim.l1.make_l1 does.

    ``refdata`` holds ``readnoise, gain, saturation, inverselinearity, ipc,
    darkdecaysignal`` as romanisim's ``gather_reference_data`` returns them (already cut to
    the footprint; ``cut`` cuts a full-detector map to it). ``apportioner='romanisim'`` uses romanisim's own per-read apportioning
    (the benchmarks' and the equivalence tests' baseline).
    """
    import galsim
    from romanisim import l1
    from romanisim.models import parameters

    from . import apportion

    tij = l1.read_pattern_to_tij(pattern)
    pedestal = parameters.pedestal if effects.pedestal is None else effects.pedestal
    ped_noise = (
        parameters.pedestal_extra_noise
        if effects.pedestal_noise is None
        else effects.pedestal_noise
    )
    inv_lin = refdata.get("inverselinearity") if effects.nonlinearity else None
    crparam = effects.crparam()
    if crparam is not None and "area" not in crparam:
        # romanisim's hit count is flux * area * time: scale the detector area to the cutout
        crparam["area"] = parameters.cr["area"] * counts.size / parameters.n_pix**2
    kwargs = dict(
        pedestal=pedestal,
        pedestal_extra_noise=ped_noise or None,
        inv_linearity=inv_lin,
        crparam=crparam,
        persistence=persistence,
        tstart=tstart,
    )
    if apportioner == "romanisim":
        resultants, dq = l1.apportion_counts_to_resultants(counts, tij, seed=seed, **kwargs)
    elif apportioner == "fast":
        resultants, dq = apportion.apportion_counts_to_resultants(counts, tij, seed=seed, **kwargs)
    else:
        raise SimulationInputError("apportioner must be 'fast' or 'romanisim'")

    if effects.ipc:
        # romanisim 0.14's IPC.apply rebinds a local name and leaves a NumPy array as it
        # was, so with a reference set's kernel the IPC was silently lost: convolve with the
        # model's (normalised) kernel ourselves
        ipc_model = refdata.get("ipc")
        kernel = getattr(ipc_model, "ipc_kernel", None)
        resultants = l1.add_ipc(resultants, kernel)
    gain = refdata["gain"]
    resultants /= gain
    if refdata.get("darkdecaysignal") is not None:
        _add_dark_decay(resultants, refdata["darkdecaysignal"], pattern, cut or (lambda a: a))
    read_noise = refdata["readnoise"]
    if np.any(np.asarray(read_noise) > 0):
        resultants = l1.add_read_noise_to_resultants(
            resultants, tij, read_noise=read_noise, rng=galsim.GaussianDeviate(seed + 17)
        )
    # in place: each full-detector copy of the resultants is ~600 MB
    resultants = resultants.astype(np.float32, copy=False)
    np.round(resultants, out=resultants)
    saturation = refdata["saturation"]
    np.clip(resultants, 0, saturation * 1.1, out=resultants)
    dq[resultants >= saturation] |= parameters.dqbits["saturated"]
    return resultants, dq


def _add_dark_decay(resultants: np.ndarray, decay: dict, pattern, cut, sign: int = 1) -> None:
    """romanisim's dark decay (l1.apply_dark_decay), on any footprint, in one map.

    romanisim evaluates A exp(-(t0 + offset(pixel)) / tau) on the full detector for every
    read; that is A exp(-offset / tau) x exp(-t0 / tau), so one cut-out map of the pixel
    read-time offsets and a factor per read give the same numbers.
    """
    from romanisim import l1
    from romanisim.models import parameters

    offsets = cut(
        l1.frame_read_times(parameters.read_time, decay["sca"], t0=0, nborder=parameters.nborder)
    )
    spatial = np.exp(-offsets / decay["time_constant"])
    for i, reads in enumerate(l1.read_pattern_to_tij(pattern)):
        t0 = np.asarray(reads) - 1.5 * parameters.read_time  # romanisim's frame offset
        factor = float(np.mean(np.exp(-t0 / decay["time_constant"])))
        resultants[i] += (sign * decay["amplitude"] * factor * spatial).astype(resultants.dtype)
