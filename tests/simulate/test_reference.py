"""The reference-data hook: romanisim simulates with a reference-file set's detector."""

from __future__ import annotations

import numpy as np
import pytest
import roman_datamodels as rdm
from romanisim.models import parameters

from platform_lib.simulate import (
    ExposureSpec,
    Footprint,
    InstrumentEffects,
    SimulationInputError,
    simulate_exposure,
    sources,
    use_reference_data,
)


def test_mapping_is_installed_and_restored() -> None:
    before = dict(parameters.reference_data)
    with use_reference_data({"readnoise": 1.5, "gain": 3.0}) as ref:
        assert parameters.reference_data["readnoise"] == 1.5 and ref["gain"] == 3.0
    assert parameters.reference_data == before
    with pytest.raises(SimulationInputError, match="unknown reference type"):
        with use_reference_data({"bogus": 1}):
            pass
    with pytest.raises(SimulationInputError, match="not found"):
        with use_reference_data({"dark": "/nonexistent/dark.asdf"}):
            pass
    assert parameters.reference_data == before


@pytest.fixture(scope="module")
def refdir(tmp_path_factory):
    """A 64-px reference set from platform_lib.calibrate's generator: many hot pixels, read
    noise 7 DN, gain 3 (lower-left corner of WFI02)."""
    from platform_lib.calibrate.reference_files import make_reference_set

    path = tmp_path_factory.mktemp("refset")
    make_reference_set(
        path,
        detector="WFI02",
        size=64,
        gain=3.0,
        read_noise=7.0,
        hot_pixel_fraction=0.01,
        dead_pixel_fraction=0.0,
        optical_elements=("F158",),
    )
    return path


@pytest.mark.slow
def test_reference_set_drives_the_simulated_detector(refdir) -> None:
    """The simulated dark exposure shows exactly the set's hot pixels, and the noise of
    (last read - first read) is the set's read noise and gain (Poisson + 2 reads)."""
    from platform_lib.calibrate.reference_files import open_reference_set

    refset = open_reference_set(refdir)
    with (
        rdm.open(refset.path("dark")) as dark,
        rdm.open(refset.path("readnoise")) as rn,
        rdm.open(refset.path("gain")) as gain,
    ):
        dark_dn_s = np.asarray(dark.dark_slope, dtype=float)[4:-4, 4:-4]
        read_noise = np.asarray(rn.data, dtype=float)[4:-4, 4:-4]
        gain_map = np.asarray(gain.data, dtype=float)[4:-4, 4:-4]
    hot = dark_dn_s > 1.0
    assert hot.sum() > 10

    spec = ExposureSpec(level=1, ma_table=4, footprint=Footprint(0, 0, 64, 64), seed=5)
    empty = sources([0.0], [0.0], [30.0], elements=["F158"])[:0]
    effects = InstrumentEffects(cosmic_rays=False, ipc=False, nonlinearity=False, sky=False)
    sim = simulate_exposure(empty, spec, effects, reference_data=refdir)
    assert parameters.reference_data["gain"] == 2  # restored afterwards
    data = np.asarray(sim.model.data, dtype=float)[:, 4:-4, 4:-4]
    diff = data[-1] - data[0]
    assert np.array_equal(diff > 100, hot)
    normal = ~hot
    expected = np.mean(2 * read_noise[normal] ** 2 + diff[normal] / gain_map[normal] + 2 / 12)
    assert diff[normal].var() == pytest.approx(expected, rel=0.1)


@pytest.mark.slow
def test_nonlinearity_round_trip_with_the_set(refdir) -> None:
    """The set's inverse linearity compresses the ramps (L1) and its linearity undoes it (L2):
    a star's L2 flux is the same with and without non-linearity, to 1%."""
    from platform_lib.simulate import sky_position

    spec = ExposureSpec(level=2, footprint=Footprint(0, 0, 64, 64), seed=8)
    ra, dec = sky_position(spec, 32, 32, reference_data=refdir)
    cat = sources([ra], [dec], [18.5], elements=["F158"])
    flux, last = {}, {}
    for nl in (False, True):
        effects = InstrumentEffects(cosmic_rays=False, nonlinearity=nl)
        l2 = simulate_exposure(cat, spec, effects, reference_data=refdir)
        flux[nl] = float(np.asarray(l2.model.data, dtype=float)[28:37, 28:37].sum())
        l1spec = ExposureSpec(level=1, footprint=Footprint(0, 0, 64, 64), seed=8)
        l1 = simulate_exposure(cat, l1spec, effects, reference_data=refdir)
        last[nl] = float(np.asarray(l1.model.data, dtype=float)[-1, 36, 36])
    assert last[True] < last[False] * 0.995
    assert flux[True] == pytest.approx(flux[False], rel=0.01)


def test_simulator_geometry_is_romancals_with_the_set(refdir) -> None:
    """With a reference set, the simulator's WCS is the one romancal's assign_wcs builds from
    the set's distortion and the file's wcsinfo (to 0.01 mas over the array), and not
    galsim.roman's (which puts the same pixels hundreds of arcsec away): one geometry."""
    import astropy.units as u
    import roman_datamodels.datamodels as rdm
    from astropy.coordinates import SkyCoord
    from romancal.assign_wcs.assign_wcs import load_wcs

    from platform_lib.calibrate.reference_files import open_reference_set
    from platform_lib.simulate import sky_position
    from platform_lib.simulate.images import _metadata, exposure_wcs

    spec = ExposureSpec(level=1, footprint=Footprint(0, 0, 64, 64), seed=1)
    empty = sources([0.0], [0.0], [30.0], elements=["F158"])[:0]
    sim = simulate_exposure(empty, spec, InstrumentEffects.none(), reference_data=refdir)
    model = rdm.ImageModel.create_fake_data(shape=(64, 64))
    for key in ("wcsinfo", "velocity_aberration", "instrument", "pointing"):
        model.meta[key] = sim.model.meta[key]
    model.meta["cal_step"] = {}  # a fake ImageModel has none; load_wcs records its step
    dist = str(open_reference_set(refdir).path("distortion"))
    romancal_wcs = load_wcs(model, {"distortion": dist}).meta.wcs
    x, y = np.meshgrid(np.linspace(0, 63, 5), np.linspace(0, 63, 5))
    ra, dec = romancal_wcs(x.ravel(), y.ravel())
    ours = np.array(
        [
            sky_position(spec, float(a), float(b), reference_data=refdir)
            for a, b in zip(x.ravel(), y.ravel())
        ]
    )
    sep = SkyCoord(ra, dec, unit="deg").separation(SkyCoord(ours[:, 0], ours[:, 1], unit="deg"))
    assert float(sep.max().to_value(u.mas)) < 0.01
    galsim_wcs = exposure_wcs(_metadata(spec).meta)
    pos = galsim_wcs.toWorld(__import__("galsim").PositionD(32, 32))
    off = SkyCoord(pos.ra.deg, pos.dec.deg, unit="deg").separation(SkyCoord(*ours[12], unit="deg"))
    assert off.to_value(u.arcsec) > 1.0  # the set's geometry really is a different one
