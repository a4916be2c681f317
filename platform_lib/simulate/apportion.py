"""Exact, faster apportioning of an exposure's electrons to MA-table resultants.

romanisim (``romanisim.l1.apportion_counts_to_resultants``) walks every read of the
exposure and draws one binomial per pixel per read; for a full detector and MA table 4 that
is 44 x 16.7 million binomial draws and dominates an L1 simulation. Without an inverse
non-linearity, the resultant only depends on two numbers per pixel and resultant: how many
electrons ``T`` arrived during the resultant's window, and the sum ``S`` over those electrons
of how many of the resultant's reads each one was present for. The law of ``S`` given ``T``
is the ``T``-fold convolution of one electron's read-weight distribution; we tabulate it
exactly and sample it by table inversion, so each resultant costs one binomial draw and one
uniform per pixel instead of one binomial per read. The joint distribution of the resultants
is the same as romanisim's (Poisson arrival times within the exposure are uniform, hence the
multinomial read split); tests/simulate/test_apportion.py checks it against romanisim.

Per-read effects that do not depend on the photon draws (cosmic rays, persistence, pedestal)
are accumulated read by read with romanisim's own functions. An inverse non-linearity is a
non-linear function of each read's cumulative charge, so it needs every read: then we hand
the whole job to romanisim's per-read implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Tables above this many entries are not built; pixels beyond the table's largest T are
# drawn with numpy's exact multinomial instead (bright sources only).
MAX_TABLE_ENTRIES = 4_000_000


@dataclass
class _InversionTable:
    """Exact inverse-CDF sampling of a family of discrete laws indexed by an integer n.

    Law n has support 0..len-1; all CDFs and their guide tables (Chen & Asau) are stored
    concatenated, so one vectorised pass draws for a whole detector with mixed n.
    """

    cdf: np.ndarray
    guide: np.ndarray
    offset: np.ndarray
    length: np.ndarray
    nmax: int

    @classmethod
    def from_pmfs(cls, pmfs: list[np.ndarray]) -> _InversionTable:
        cdfs, guides = [], []
        for pmf in pmfs:
            cdf = np.minimum(np.cumsum(pmf), 1.0)
            cdf[-1] = 1.0
            k = cdf.size
            # guide[j] = first index whose CDF exceeds j/k: the inversion starts there.
            guides.append(np.searchsorted(cdf, np.arange(k) / k, side="right"))
            cdfs.append(cdf)
        length = np.array([c.size for c in cdfs], dtype=np.int64)
        offset = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
        return cls(np.concatenate(cdfs), np.concatenate(guides), offset, length, len(pmfs) - 1)

    @classmethod
    def weight_sums(cls, q: np.ndarray, nmax: int) -> _InversionTable:
        """Law n: sum of the excess weights of n electrons, one electron's law being ``q``."""
        pmfs, pmf = [], np.ones(1)
        for _ in range(nmax + 1):
            pmfs.append(pmf)
            pmf = np.convolve(pmf, q)
        return cls.from_pmfs(pmfs)

    @classmethod
    def binomials(cls, p: float, nmax: int) -> _InversionTable:
        """Law n: Binomial(n, p)."""
        from scipy.stats import binom

        sizes = np.arange(nmax + 1)
        n_of = np.repeat(sizes, sizes + 1)
        k_of = np.arange(n_of.size) - np.repeat(np.cumsum(sizes + 1) - (sizes + 1), sizes + 1)
        flat = binom.pmf(k_of, n_of, p)
        return cls.from_pmfs(np.split(flat, np.cumsum(sizes + 1)[:-1]))

    def sample(self, n: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Inverse-CDF draws for indices ``n`` (<= nmax) and uniforms ``u`` in [0, 1)."""
        base = self.offset[n]
        k = self.length[n]
        idx = self.guide[base + np.minimum((u * k).astype(np.int64), k - 1)]
        active = np.flatnonzero(self.cdf[base + idx] <= u)
        # Each step moves every active draw one CDF entry up; the last entry is 1 > u, so
        # the walk ends within the longest table.
        for _ in range(int(k.max(initial=1))):
            if active.size == 0:
                break
            idx[active] += 1
            keep = self.cdf[base[active] + idx[active]] <= u[active]
            active = active[keep]
        return idx


def _draw(table_factory, nmax_cap: int, n: np.ndarray, rng: np.random.Generator, exact_big):
    """Draw law ``n`` per pixel: table inversion up to the cap, ``exact_big`` above it."""
    out = np.zeros(n.size, dtype=np.int64)
    # Tabulate up to where nearly all pixels lie (a sparse sample's 99.9th percentile): the
    # rare brighter pixels are drawn exactly by numpy, which is cheaper than a bigger table.
    sample = n[:: max(1, n.size // 100_000)]
    typical = int(np.percentile(sample, 99.9)) + 1 if sample.size else 0
    nmax = min(int(n.max(initial=0)), typical, nmax_cap)
    small = n <= nmax
    table = table_factory(nmax)
    out[small] = table.sample(n[small], rng.random(int(small.sum())))
    big = np.flatnonzero(~small)
    if big.size:
        out[big] = exact_big(n[big])
    return out


def _resultant_windows(tij: Sequence[Sequence[float]]) -> list[tuple[float, float, np.ndarray]]:
    """(window start, window end, q) per resultant; q = P(excess weight k) for one electron."""
    windows = []
    tlast = 0.0
    for resultant_reads in tij:
        reads = np.asarray(resultant_reads, dtype=float)
        starts = np.concatenate([[tlast], reads[:-1]])
        dt = reads - starts
        if np.any(dt <= 0):
            raise ValueError("read times must be strictly increasing")
        # An electron arriving during read j's interval is present in reads j..N-1:
        # weight N - j, excess weight N - j - 1.
        q = (dt / dt.sum())[::-1].copy()
        windows.append((tlast, float(reads[-1]), q))
        tlast = float(reads[-1])
    return windows


def apportion_counts_to_resultants(
    counts: np.ndarray,
    tij: Sequence[Sequence[float]],
    *,
    pedestal: float | None = None,
    pedestal_extra_noise: float | None = None,
    inv_linearity=None,
    crparam: dict | None = None,
    persistence=None,
    tstart=None,
    seed: int = 46,
) -> tuple[np.ndarray, np.ndarray]:
    """Same contract as romanisim's function of the same name (electrons in, resultants out).

    Returns ``(resultants[n_resultant, ny, nx] float32, dq[n_resultant, ny, nx] uint32)``.
    """
    from romanisim import cr, l1
    from romanisim.models import parameters

    if inv_linearity is not None:
        return l1.apportion_counts_to_resultants(
            counts,
            tij,
            pedestal=pedestal,
            pedestal_extra_noise=pedestal_extra_noise,
            inv_linearity=inv_linearity,
            crparam=crparam,
            persistence=persistence,
            tstart=tstart,
            seed=seed,
        )
    counts = np.asarray(counts)
    if not np.all(counts == np.round(counts)):
        raise ValueError("apportion_counts_to_resultants expects integer electron counts")
    if persistence is not None and tstart is None:
        raise ValueError("tstart must be set if persistence is set")
    remaining = np.clip(counts, 0, 2 * 10**9).astype(np.int64).reshape(-1)
    rng = np.random.default_rng(seed)
    rng_cr, rng_ps, rng_ped = (np.random.default_rng(seed + k) for k in (1, 2, 3))

    windows = _resultant_windows(tij)
    texp = windows[-1][1]
    shape = counts.shape
    resultants = np.empty((len(windows),) + shape, dtype=np.float32)
    dq = np.zeros(resultants.shape, dtype=np.uint32)

    instrumental = np.full(shape, float(pedestal or 0.0), dtype=np.float32)
    if pedestal_extra_noise is not None:
        instrumental += rng_ped.normal(0, pedestal_extra_noise, shape).astype(np.float32)
    per_read = crparam is not None or persistence is not None
    t0_mjd = float(tstart.mjd) if persistence is not None else 0.0  # read only with persistence

    # A table costs about as much per entry as a draw costs per pixel: keep tables at most
    # about twice the pixel count, so small cutouts do not pay for large tables.
    entries = min(MAX_TABLE_ENTRIES, 2 * remaining.size)
    # one read's sparse additions (cosmic rays, persistence); a 0-size array when there are none
    scratch = np.zeros(shape if per_read else (0,), dtype=np.float32)
    so_far = np.zeros(shape, dtype=np.int64)
    flat_so_far = so_far.reshape(-1)
    tnow = None
    for i, (wstart, wend, q) in enumerate(windows):
        p = (wend - wstart) / (texp - wstart)
        if p >= 1.0:
            arrived = remaining
        else:
            arrived = _draw(
                lambda nmax, p=p: _InversionTable.binomials(p, nmax),
                int(np.sqrt(2 * entries)),
                remaining,
                rng,
                lambda n, p=p: rng.binomial(n, p),
            )
        remaining = remaining - arrived
        nread = q.size
        excess = np.zeros(arrived.size, dtype=np.int64)
        if nread > 1:
            # a weight-sum table holds ~ nmax^2 (N-1) / 2 entries
            excess = _draw(
                lambda nmax, q=q: _InversionTable.weight_sums(q, nmax),
                int(np.sqrt(2 * entries / (nread - 1))),
                arrived,
                rng,
                lambda n, q=q: rng.multinomial(n, q) @ np.arange(q.size),
            )
        # mean over the resultant's reads of the cumulative charge
        mean_counts = flat_so_far + (arrived + excess) / nread
        flat_so_far += arrived

        # the resultant sees the instrumental charge present before its reads...
        resultants[i] = mean_counts.reshape(shape) + instrumental
        if per_read:
            # ...plus what each of its reads adds (cosmic rays, persistence), weighted by the
            # fraction of the resultant's reads made after it arrived. Those additions are
            # sparse: romanisim's functions write them into a zero scratch image, and only
            # the touched pixels are carried over (no full-image copy per read).
            flat_res = resultants[i].reshape(-1)
            flat_inst = instrumental.reshape(-1)
            for j, t in enumerate(tij[i]):
                weight = (nread - j) / nread
                if crparam is not None:
                    cr.simulate_crs(scratch, parameters.read_time, **crparam, rng=rng_cr)
                    hit = _drain(scratch, flat_inst, flat_res, weight)
                    dq[i].reshape(-1)[hit] |= parameters.dqbits["jump_det"]
                if persistence is not None:
                    tnow = t0_mjd + t / 86400.0
                    persistence.add_to_read(scratch, tnow, rng=rng_ps)
                    _drain(scratch, flat_inst, flat_res, weight)

    if persistence is not None:
        pedestal_value = float(pedestal or 0.0)
        persistence.update(so_far + instrumental - pedestal_value, tnow)
    return resultants, dq


def _drain(
    scratch: np.ndarray, flat_inst: np.ndarray, flat_res: np.ndarray, weight: float
) -> np.ndarray:
    """Move one read's additions from ``scratch`` into the running charge and the resultant."""
    flat = scratch.reshape(-1)
    hit = np.flatnonzero(flat)
    if hit.size:
        added = flat[hit].copy()
        flat[hit] = 0
        flat_inst[hit] += added
        flat_res[hit] += weight * added
    return hit
