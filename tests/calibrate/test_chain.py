"""The platform's own chain, end to end: ``platform_lib.simulate`` -> romancal's ExposurePipeline
(through ``calibrate_exposure``, tweakreg against the scene's reference catalog) -> the
pipeline's source catalog -> matched on the sky to the simulation's truth.

One reference set drives both ends (the conftest's 256-pixel WFI01 set), so this is the test
that "truth and calibration agree by construction" holds for positions and fluxes, not only for
the detector model. Bounds: the alignment requirement (< 1.3 mas rms for bright stars) and
calibrated PSF fluxes 1.000 +- 0.005 of truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import FILTER, SIZE

pytestmark = pytest.mark.slow

POINTING_ERROR = (0.3, -0.25)  # arcsec east, north: commanded minus true
BRIGHT_SNR = 200.0


@dataclass
class Chain:
    truth: Any
    catalog: Any
    model: Any
    alignment: dict


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, refset_dir: Path) -> Chain:
    import astropy.units as u
    import roman_datamodels.datamodels as rdm
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

    from platform_lib.calibrate.exposure import calibrate_exposure, output_name
    from platform_lib.calibrate.reference_files import open_reference_set
    from platform_lib.simulate import (
        ExposureSpec,
        Footprint,
        InstrumentEffects,
        simulate_exposure,
        sky_position,
        sources,
    )

    base = tmp_path_factory.mktemp("chain")
    detector = open_reference_set(refset_dir).detector
    spec = ExposureSpec(
        optical_element=FILTER,
        detector=detector,
        level=1,
        ma_table=4,
        footprint=Footprint(0, 0, SIZE, SIZE),
        seed=3,
        name="chain",
    )
    # a handful of isolated, unsaturated stars on a jittered grid (blends would test the
    # deblender, not the geometry)
    rng = np.random.default_rng(4)
    grid = np.arange(24, SIZE - 20, 42.0)
    xy = np.array([(a, b) for a in grid for b in grid]) + rng.uniform(-6, 6, (grid.size**2, 2))
    radec = np.array([sky_position(spec, x, y, reference_data=refset_dir) for x, y in xy])
    scene = sources(radec[:, 0], radec[:, 1], rng.uniform(18.0, 20.5, len(xy)), elements=[FILTER])
    effects = InstrumentEffects(cosmic_rays=False)  # a hit on a star is not what we measure
    sim = simulate_exposure(scene, spec, effects, reference_data=refset_dir)

    # the commanded pointing is off, as in flight: tweakreg must find the true one
    wcsinfo = sim.model["meta"]["wcsinfo"]
    moved = SkyCoord(wcsinfo["ra_ref"] * u.deg, wcsinfo["dec_ref"] * u.deg).spherical_offsets_by(
        POINTING_ERROR[0] * u.arcsec, POINTING_ERROR[1] * u.arcsec
    )
    wcsinfo["ra_ref"], wcsinfo["dec_ref"] = float(moved.ra.deg), float(moved.dec.deg)
    l1 = base / spec.filename
    with open(l1, "wb") as f:
        sim.write_to(f)
    refcat = base / "scene_refcat.ecsv"
    Table({"ra": scene["ra"], "dec": scene["dec"]}).write(refcat)

    config = {"steps": {"tweakreg": {"abs_minobj": 5, "abs_fitgeometry": "rshift"}}}
    result = calibrate_exposure(
        l1, base / "L2", refs=refset_dir, config=config, abs_refcat=refcat, skip_done=False
    )
    assert result.status == "done", result.error
    catalog = Table.read(base / "L2" / output_name(l1.name, "cat", "parquet"))
    return Chain(
        truth=sim.truth,
        catalog=catalog,
        model=rdm.open(result.output),
        alignment=result.provenance["alignment"],
    )


def _matched(chain: Chain):
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    cat, truth = chain.catalog, chain.truth
    truth = truth[truth["in_footprint"]]
    measured = SkyCoord(
        np.asarray(cat["ra_psf"], float), np.asarray(cat["dec_psf"], float), unit="deg"
    )
    true = SkyCoord(truth["ra"], truth["dec"], unit="deg")
    idx, sep, _ = true.match_to_catalog_sky(measured)
    ok = sep < 0.1 * u.arcsec
    return truth[ok], cat[idx[ok]], measured[idx[ok]], true[ok]


def test_positions_agree_with_truth_on_the_sky(chain: Chain) -> None:
    """Every star is found where the truth puts it; bright stars' PSF positions through the
    tweaked WCS are within the alignment requirement of their true sky positions, and so is
    the WCS itself at the stars' true pixels (before: the generated distortion put the
    detector 181-838" away from where the simulator drew it)."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    assert chain.model.meta.cal_step.tweakreg == "COMPLETE"
    truth, cat, measured, true = _matched(chain)
    assert len(truth) == int(chain.truth["in_footprint"].sum())
    snr = np.asarray(cat["psf_flux"], float) / np.asarray(cat["psf_flux_err"], float)
    bright = snr > BRIGHT_SNR
    dra, ddec = measured.spherical_offsets_to(true)
    rms = float(np.sqrt(np.mean((dra.to_value(u.mas) ** 2 + ddec.to_value(u.mas) ** 2)[bright])))
    ra, dec = chain.model.meta.wcs(np.asarray(truth["x"]), np.asarray(truth["y"]))
    wra, wdec = SkyCoord(ra, dec, unit="deg").spherical_offsets_to(true)
    wcs_rms = float(np.sqrt(np.mean(wra.to_value(u.mas) ** 2 + wdec.to_value(u.mas) ** 2)))
    print(
        f"\n{bright.sum()} bright stars (PSF S/N > {BRIGHT_SNR:g}): {rms:.3f} mas rms on the sky; "
        f"WCS at true pixels {wcs_rms:.3f} mas rms; pipeline's own residuals "
        f"{chain.alignment['rms_mas']:.3f} mas over {chain.alignment['n_matched']} stars"
    )
    assert bright.sum() >= 10
    assert rms < 1.3
    assert wcs_rms < 1.3


def test_calibrated_fluxes_are_the_true_fluxes(chain: Chain) -> None:
    """romancal's PSF fluxes (nJy, with the set's ePSF and photometric zero point) of bright
    stars are 1.000 +- 0.005 of the scene's fluxes (before: 0.974, the ePSF normalised inside
    its 7" stamp, drawn with another PSF model and without the detector's IPC)."""
    truth, cat, _, _ = _matched(chain)
    snr = np.asarray(cat["psf_flux"], float) / np.asarray(cat["psf_flux_err"], float)
    bright = snr > BRIGHT_SNR
    ratio = np.asarray(cat["psf_flux"], float) / (np.asarray(truth["flux"], float) * 3631e9)
    med = float(np.median(ratio[bright]))
    print(
        f"\nPSF flux / truth over {bright.sum()} bright stars: median {med:.4f}, "
        f"mean {ratio[bright].mean():.4f}, rms {ratio[bright].std():.4f}; all {len(ratio)} "
        f"stars: median {np.median(ratio):.4f}"
    )
    assert bright.sum() >= 10
    assert abs(med - 1.0) < 0.005
    assert ratio[bright].std() < 0.007
