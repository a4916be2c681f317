"""Detector effects follow their parameters: noise, cosmic rays, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.time import Time
from romanisim import l1
from romanisim.models import parameters
from romanisim.persistence import Persistence
from scipy import ndimage

from platform_lib.simulate import (
    ExposureSpec,
    Footprint,
    InstrumentEffects,
    make_l1,
    read_pattern,
    simulate_exposure,
    sources,
)
from platform_lib.simulate.apportion import apportion_counts_to_resultants

SIDE = 128


def test_flat_field_noise_is_poisson_plus_read_noise() -> None:
    """Sky-only L1 cutout: Var(last read - first read) = mean/gain + 2 read_noise^2 + 2/12.

    MA table 4 starts and ends with single-read resultants, so their difference is the sky
    and dark electrons between reads 1 and 44 (Poisson: variance = mean, in electrons) plus
    two reads' noise and rounding to whole DN. IPC is off (it correlates neighbours and would
    lower the per-pixel variance); the pedestal cancels in the difference. With 16384 pixels
    the sample variance has a 1.1% standard error; we allow 5%.
    """
    read_noise, gain = 6.0, float(parameters.reference_data["gain"])
    spec = ExposureSpec(level=1, ma_table=4, footprint=Footprint.cutout(SIDE), seed=3)
    empty = sources([0.0], [0.0], [30.0], elements=["F158"])[:0]
    effects = InstrumentEffects(
        cosmic_rays=False, ipc=False, nonlinearity=False, read_noise=read_noise
    )
    sim = simulate_exposure(empty, spec, effects)
    data = np.asarray(sim.model.data, dtype=float)[:, 4:-4, 4:-4]
    assert data.shape == (len(read_pattern(4)), SIDE, SIDE)
    diff = data[-1] - data[0]
    expected = diff.mean() / gain + 2 * read_noise**2 + 2 / 12
    assert diff.mean() > 20  # a real sky signal, not just noise
    assert diff.var() == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("flux", [150.0, 300.0])
def test_cosmic_ray_rate_follows_flux(flux: float) -> None:
    """Hits counted in the jump flags = flux * cutout area * exposure time (romanisim's law).

    romanisim's rate is per detector area; make_l1 scales that area to the cutout. MA table
    110 has short resultants (<= 3 reads), so tracks rarely merge within one resultant.
    """
    pattern = read_pattern(110)
    counts = np.zeros((SIDE, SIDE))
    refdata = {"gain": 2.0, "readnoise": 0.0, "saturation": 1e9}
    effects = InstrumentEffects.none(cosmic_rays={"flux": flux})
    _, dq = make_l1(counts, pattern, effects=effects, refdata=refdata, seed=4)
    jump = parameters.dqbits["jump_det"]
    hits = sum(ndimage.label(dq[i] & jump, structure=np.ones((3, 3)))[1] for i in range(len(dq)))
    area = parameters.cr["area"] * SIDE * SIDE / parameters.n_pix**2
    expected = flux * area * parameters.read_time * pattern[-1][-1]
    # Poisson: 5 sigma is < 20% here; merged neighbouring tracks can only lower the count
    assert expected * 0.8 < hits < expected * 1.1


@pytest.mark.parametrize("amplitude", [0.017, 0.034])
def test_persistence_follows_its_model(amplitude: float) -> None:
    """Charge from an earlier saturating exposure = integral of romanisim's persistence current.

    2000 pixels saw 2e5 electrons 200 s before this exposure starts; the last (single-read)
    resultant holds the persistence electrons of all 44 reads: Poisson with mean
    sum_k current(t_k) * read_time. Other pixels get none.
    """
    tstart = Time("2027-06-01T00:00:00")
    index = np.arange(0, 4000, 2)
    persist = Persistence(
        x=np.full(index.size, 2e5),
        t=np.full(index.size, tstart.mjd - 200 / 86400),
        index=index,
        A=amplitude,
    )
    tij = l1.read_pattern_to_tij(4)
    read_times = np.concatenate(tij)
    expected = sum(persist.current(tstart.mjd + t / 86400.0).mean() for t in read_times)
    expected *= parameters.read_time
    res, _ = apportion_counts_to_resultants(
        np.zeros((SIDE, SIDE)), tij, seed=9, pedestal=0, persistence=persist, tstart=tstart
    )
    last = res[-1].reshape(-1)
    assert expected > 5
    assert last[index].mean() == pytest.approx(
        expected, rel=5 * np.sqrt(expected / index.size) / expected + 0.01
    )
    untouched = np.setdiff1d(np.arange(last.size), index)
    assert np.all(last[untouched] == 0)
