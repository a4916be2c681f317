"""Fixtures for the simulation tests: small cutouts (128 px) and few resultants keep CI fast."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True, scope="session")
def _quiet_romanisim():
    # romanisim logs every step at INFO; keep test output readable.
    logging.getLogger("romanisim").setLevel(logging.WARNING)
    yield


@pytest.fixture(scope="session")
def star_exposure():
    """An L2 128x128 cutout with one bright isolated star at its centre, no detector effects
    except read noise, and its spec."""
    from platform_lib.simulate import (
        ExposureSpec,
        Footprint,
        InstrumentEffects,
        simulate_exposure,
        sky_position,
        sources,
    )

    spec = ExposureSpec(
        optical_element="F158",
        detector="WFI02",
        level=2,
        ma_table=4,
        footprint=Footprint.cutout(128),
        seed=11,
    )
    ra, dec = sky_position(spec, 64.0, 64.0)
    cat = sources([ra], [dec], [18.0], elements=["F158"])
    sim = simulate_exposure(cat, spec, InstrumentEffects.none(read_noise=5.0))
    return spec, cat, sim
