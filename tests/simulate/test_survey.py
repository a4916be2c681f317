"""Survey mode: a Dask graph of pointings x detectors writing into S3, with variable sources."""

from __future__ import annotations

import io

import asdf
import numpy as np
import pytest
import roman_datamodels as rdm
from astropy.table import Table

from platform_lib.simulate import (
    Footprint,
    InstrumentEffects,
    add_variability,
    catalog_at,
    flux_factor,
    plan_survey,
    run_survey,
    sky_position,
    sources,
)
from platform_lib.simulate.images import ExposureSpec
from platform_lib.simulate.lightcurves import microlensing, periodic, supernova


def test_plan_survey_covers_epochs_elements_dithers() -> None:
    plan = plan_survey(
        (10.0, 60.0), optical_elements=["F158", "F087"], epochs=3, cadence_days=2.0, dithers="box4"
    )
    assert len(plan) == 3 * 2 * 4
    assert {p.epoch for p in plan} == {0, 1, 2}
    assert len({p.name for p in plan}) == len(plan)
    epoch_mjd = [min(p.mjd for p in plan if p.epoch == e) for e in range(3)]
    assert np.allclose(np.diff(epoch_mjd), 2.0)
    d1 = next(p for p in plan if p.dither == 1)
    # box4's second offset is 0.55" in RA: cos(dec) corrects the RA step
    assert (d1.ra - 10.0) * 3600 * np.cos(np.radians(60.0)) == pytest.approx(0.55)


def test_light_curves() -> None:
    t = np.linspace(-30, 30, 601)
    mag = microlensing(t, t0=0.0, u0=0.1, te=5.0)
    assert mag.max() == pytest.approx((0.01 + 2) / (0.1 * np.sqrt(0.01 + 4)))
    assert mag[0] == pytest.approx(1.0, abs=0.01)
    sn = supernova(t, t0=0.0, rise=2.0, fall=15.0)
    assert sn.max() == pytest.approx(1.0, abs=1e-3) and sn[0] < 1e-3
    per = periodic(t, t0=0.0, period=10.0, amplitude=0.5)
    assert per.max() / per.min() == pytest.approx(10 ** (0.4 * 1.0), rel=1e-3)


@pytest.mark.slow
def test_survey_on_dask_into_s3_follows_light_curves(s3_store, monkeypatch) -> None:
    """2 epochs x 2 detectors on a 2-worker local cluster, written to SeaweedFS (real S3).

    Each detector's cutout holds one variable star: its measured flux relative to the first
    epoch follows the light curve recorded in the truth catalogs (within 3%: ~1e5 electrons).
    """
    for key, value in s3_store.client_env().items():
        monkeypatch.setenv(key, value)
    footprint = Footprint.cutout(64)
    start = "2027-06-01T00:00:00"
    plan = plan_survey((270.0, 66.0), epochs=2, cadence_days=2.0, start_time=start)
    positions = [
        sky_position(ExposureSpec(detector=d, footprint=footprint), 32.0, 32.0)
        for d in ("WFI02", "WFI05")
    ]
    cat = sources(
        [p[0] for p in positions], [p[1] for p in positions], [19.0, 19.0], elements=["F158"]
    )
    t_mid = plan[1].mjd + 0.5
    add_variability(cat, [0], "microlensing", t0=t_mid, u0=0.4, te=2.0)
    add_variability(cat, [1], "periodic", t0=plan[0].mjd, period=8.0, amplitude=0.3)
    assert flux_factor(cat, t_mid)[0] > 2.5
    assert catalog_at(cat, t_mid)["F158"][0] == pytest.approx(
        cat["F158"][0] * flux_factor(cat, t_mid)[0]
    )

    from platform_lib.compute import get_client

    url = "s3://roman/simulate-test/survey"
    # reuse=False: workers started now inherit the S3 credentials set above (a client left
    # active by another test would have workers without them).
    with get_client(n_workers=2, reuse=False) as client:
        manifest = run_survey(
            cat,
            plan,
            url,
            detectors=["WFI02", "WFI05"],
            level=2,
            footprint=footprint,
            effects=InstrumentEffects.none(read_noise=5.0),
            client=client,
            show_progress=False,
        )
    assert len(manifest) == 4
    assert sorted(set(manifest["detector"])) == ["WFI02", "WFI05"]

    import s3fs

    fs = s3fs.S3FileSystem(**s3_store.storage_options())
    assert fs.exists("roman/simulate-test/survey/survey_manifest.ecsv")
    measured: dict[str, list[tuple[float, float]]] = {"WFI02": [], "WFI05": []}
    for row in manifest:
        with (
            fs.open(row["image"].removeprefix("s3://"), "rb") as f,
            asdf.open(io.BytesIO(f.read())) as af,
        ):
            model = rdm.open(af)
            data = np.asarray(model.data, dtype=float)
        with fs.open(row["truth"].removeprefix("s3://"), "rb") as f:
            truth = Table.read(f.read().decode(), format="ascii.ecsv")
        star = truth[truth["in_footprint"]]
        assert len(star) == 1
        yy, xx = np.mgrid[: data.shape[0], : data.shape[1]]
        r = np.hypot(xx - star["x"][0], yy - star["y"][0])
        flux = (data[r < 12] - np.median(data[r > 20])).sum()
        measured[row["detector"]].append((float(star["flux_factor"][0]), flux))
    for det, values in measured.items():
        factors = np.array([v[0] for v in values])
        fluxes = np.array([v[1] for v in values])
        assert np.ptp(factors) > 0.2, det  # the light curve really varies over the epochs
        assert np.allclose(fluxes / fluxes[0], factors / factors[0], rtol=0.03), det


def test_serial_survey_carries_persistence(tmp_path) -> None:
    """With persistence on, a detector's exposures chain: a saturating star in epoch 0 leaves
    charge in epoch 1 where the star no longer is (it is a supernova that has faded)."""
    footprint = Footprint.cutout(48)
    spec = ExposureSpec(detector="WFI07", footprint=footprint)
    ra, dec = sky_position(spec, 24.0, 24.0)
    cat = sources([ra], [dec], [10.0], elements=["F158"])
    plan = plan_survey((270.0, 66.0), epochs=2, cadence_days=0.01)
    add_variability(cat, [0], "supernova", t0=plan[0].mjd, rise=0.0001, fall=0.0005)
    assert flux_factor(cat, plan[1].mjd)[0] < 1e-6 < flux_factor(cat, plan[0].mjd)[0]
    images = {}
    for persist in (True, False):
        manifest = run_survey(
            cat,
            plan,
            str(tmp_path / str(persist)),
            detectors=["WFI07"],
            level=1,
            footprint=footprint,
            serial=True,
            effects=InstrumentEffects.none(persistence=persist),
        )
        with rdm.open(manifest["image"][1]) as second:
            images[persist] = np.asarray(second.data[-1], dtype=float)[4:-4, 4:-4]
    # no sky, dark, read noise or pedestal: without persistence the faded star leaves nothing;
    # with it, charge remains, most where the star was brightest
    assert np.all(images[False] == 0)
    with_p = images[True]
    assert with_p[22:27, 22:27].mean() > 3 * max(with_p[:, :5].mean(), 0.1)
