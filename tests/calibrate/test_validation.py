"""Science validation of L1 -> L2 -> L3 on romanisim exposures made from the same reference set.

Figures are printed (run with -s) and asserted against tolerances justified in each test.
"""

from __future__ import annotations

import numpy as np
import pytest
from roman_datamodels.dqflags import pixel

pytestmark = pytest.mark.slow

BAD = pixel.DO_NOT_USE | pixel.SATURATED | pixel.JUMP_DET


def _z(model, sim):
    d = np.asarray(model.data, dtype=float)
    e = np.asarray(model.err, dtype=float)
    dq = np.asarray(model.dq)
    good = ((dq & BAD) == 0) & np.isfinite(d) & (e > 0)
    return (d - sim.truth_rate) / e, good


def test_batch_ran_every_good_exposure_and_reported_the_damaged_one(field):
    statuses = {r.input.rsplit("/", 1)[-1]: r.status for r in field.batch.results}
    assert statuses.pop(field.bad_l1.name) == "failed"
    assert set(statuses.values()) == {"done"}, field.batch.summary()
    bad = next(r for r in field.batch.results if r.status == "failed")
    assert "cannot read L1 file" in bad.error
    assert not (field.out / "r0001_99_wfi01_cal.asdf").exists()
    # rerun: done-and-valid products are skipped, the damaged input fails again
    again = {r.input.rsplit("/", 1)[-1]: r.status for r in field.rerun.results}
    assert again.pop(field.bad_l1.name) == "failed"
    assert set(again.values()) == {"skipped"}


def test_l2_error_model_is_honest(field, l2_models):
    """(L2 - truth)/err over sky and faint-source pixels: mean ~ 0, std ~ 1.

    Tolerances: |mean| < 0.1 (a rate bias below a tenth of the per-pixel noise) and
    0.9 < std < 1.1 (the err array neither hides nor invents 10% of the noise). With 6e4
    pixels per exposure the statistical scatter of these numbers is < 0.01, so the bounds
    are about systematic error, not luck. Bright pixels (> 50 DN/s) are reported: there
    the L2 rate sits ~0.5-1% below truth (romancal's 'likely' ramp fit on romanisim ramps),
    which is several sigma of their small Poisson error.
    """
    for model, sim in zip(l2_models, field.sims):
        z, good = _z(model, sim)
        faint = good & (sim.truth_rate < 5.0)
        bright = good & (sim.truth_rate > 50.0)
        zm, zs = float(np.mean(z[faint])), float(np.std(z[faint]))
        print(
            f"\n{sim.l1_path.name}: faint pixels n={faint.sum()} z mean={zm:+.3f} std={zs:.3f}; "
            f"bright n={bright.sum()} median ratio L2/truth="
            f"{np.median(np.asarray(model.data)[bright] / sim.truth_rate[bright]):.4f}"
        )
        assert faint.sum() > 0.9 * sim.truth_rate.size
        assert abs(zm) < 0.1
        assert 0.9 < zs < 1.1


def test_jump_detection_against_injected_cosmic_rays(field, l2_models):
    """Recall over pixels a cosmic ray gave > 20 DN (4x the read noise) and false-positive rate
    over sky pixels (< 5 DN/s) no cosmic ray touched. Bounds: recall >= 0.8 (measured
    0.85-0.91: the misses are hits late in the ramp or in the last resultant, where a jump is
    indistinguishable from noise), false positives <= 2e-3 (measured 2e-5 to 2e-4: noise
    excursions past the likelihood threshold; each costs part of one ramp, not a pixel)."""
    recalls, fprs = [], []
    for model, sim in zip(l2_models, field.sims):
        dq = np.asarray(model.dq)
        jump = (dq & pixel.JUMP_DET) != 0
        unusable = (dq & (pixel.SATURATED | pixel.DO_NOT_USE)) != 0
        hit = (sim.cr_deposit > 20) & ~unusable
        clean = (sim.cr_deposit == 0) & ~unusable & (sim.truth_rate < 5)
        assert hit.sum() > 30, "too few cosmic rays to measure recall"
        recalls.append((jump & hit).sum() / hit.sum())
        fprs.append((jump & clean).sum() / clean.sum())
        print(
            f"\n{sim.l1_path.name}: CR pixels={hit.sum()} recall={recalls[-1]:.3f} "
            f"false-positive rate={fprs[-1]:.2e}"
        )
    assert min(recalls) >= 0.8
    assert max(fprs) <= 2e-3


def test_saturated_pixels_flagged(field, l2_models):
    """Pixels whose signal passes saturation during the ramp carry SATURATED; pixels that
    never reach half of it do not."""
    for model, sim in zip(l2_models, field.sims):
        dq = np.asarray(model.dq)
        gain = 2.0
        final_dn = 10000 / gain + sim.truth_rate * sim.exptime  # pedestal + signal (linear DN)
        sat_dn = sim.info["saturation_dn"]
        must = final_dn > 1.2 * sat_dn  # margin for the non-linearity and noise
        never = final_dn < 0.5 * sat_dn
        flagged = (dq & pixel.SATURATED) != 0
        print(f"\n{sim.l1_path.name}: expected saturated={must.sum()} flagged={flagged.sum()}")
        assert must.sum() > 5
        assert flagged[must].mean() >= 0.95
        assert not flagged[never].any()


def test_tweakreg_aligns_to_the_gaia_like_catalog(field, l2_models):
    """After a 0.39" commanded-pointing error, the tweaked WCS maps true pixel positions of
    bright stars to their true sky positions within the seed's 1.3 mas rms. The achieved
    residuals are written into the product."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    for model, sim in zip(l2_models, field.sims):
        assert model.meta.cal_step.tweakreg == "COMPLETE"
        st = sim.stars
        inside = (st["x"] > 8) & (st["x"] < 247) & (st["y"] > 8) & (st["y"] < 247)
        bright = inside & (st["flux"] > 10 ** (-0.4 * 21.0))
        ra, dec = model.meta.wcs(np.asarray(st["x"][bright]), np.asarray(st["y"][bright]))
        dra, ddec = SkyCoord(ra, dec, unit="deg").spherical_offsets_to(
            SkyCoord(st["ra"][bright], st["dec"][bright], unit="deg")
        )
        rms = float(np.sqrt(np.mean(dra.to_value(u.mas) ** 2 + ddec.to_value(u.mas) ** 2)))
        prov = model.meta.platform_provenance["alignment"]
        print(
            f"\n{sim.l1_path.name}: WCS error at {bright.sum()} bright stars = {rms:.3f} mas rms "
            f"(commanded error 390 mas); catalog residuals {prov['rms_mas']:.2f} mas rms "
            f"over {prov['n_matched']} stars"
        )
        assert bright.sum() >= 10
        assert rms < 1.3
        assert prov["n_matched"] >= 5 and np.isfinite(prov["rms_mas"])


def _catalog(field, sim):
    from astropy.table import Table

    from platform_lib.calibrate.exposure import output_name

    return Table.read(field.out / output_name(sim.l1_path.name, "cat", "parquet"))


def _match(cat, stars, radius_arcsec=0.1):
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    c = SkyCoord(np.asarray(cat["ra"], float), np.asarray(cat["dec"], float), unit="deg")
    s = SkyCoord(stars["ra"], stars["dec"], unit="deg")
    idx, sep, _ = s.match_to_catalog_sky(c)
    ok = sep < radius_arcsec * u.arcsec
    return idx, ok


def test_photometric_stability_across_exposures(field):
    """Relative PSF photometry of bright (S/N > 50) unsaturated stars seen in two or more exposures: the per-star
    rms across exposures is reported against the seed's 0.1% goal, and must agree with the
    pipeline's own flux errors (within a factor 2): the scatter is photon noise, not a
    calibration drift."""
    stars = field.stars
    fluxes, errs = [], []
    for sim in field.sims:
        cat = _catalog(field, sim)
        idx, ok = _match(cat, stars)
        f = np.where(ok, np.asarray(cat["psf_flux"], float)[idx], np.nan)
        e = np.where(ok, np.asarray(cat["psf_flux_err"], float)[idx], np.nan)
        fluxes.append(f)
        errs.append(e)
    f, e = np.array(fluxes), np.array(errs)
    # unsaturated (fainter than AB 17 in 139 s): a saturated core leaves the fit to the wings
    unsat = np.asarray(stars["F158"]) < 10 ** (-0.4 * 17.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        usable = np.isfinite(f) & (f / e > 50) & unsat[None, :]
    f = np.where(usable, f, np.nan)
    e = np.where(usable, e, np.nan)
    seen = usable.sum(axis=0) >= 2  # in at least two exposures
    rel = np.nanstd(f[:, seen], axis=0, ddof=1) / np.nanmean(f[:, seen], axis=0)
    expected = np.nanmean(e[:, seen] / f[:, seen], axis=0)
    print(
        f"\n{seen.sum()} stars in >= 2 exposures with S/N>50: median rms = "
        f"{100 * np.median(rel):.3f}% (goal 0.1%), median expected from errors = "
        f"{100 * np.median(expected):.3f}%; best star {100 * np.min(rel):.3f}%"
    )
    assert seen.sum() >= 5
    ratio = np.median(rel) / np.median(expected)
    assert 0.4 < ratio < 2.0


def test_mosaic_footprint_seams_and_fluxes(field, l2_models):
    """The L3 mosaic covers the union of the inputs, its background does not step where the
    number of overlapping exposures changes (a seam), and its star fluxes match the L2 ones."""
    import roman_datamodels.datamodels as rdm
    from astropy.table import Table

    mos = rdm.open(field.mosaic.output)
    data = np.asarray(mos.data, dtype=float)
    ny, nx = data.shape
    assert max(ny, nx) > 256  # dithers widen the footprint
    yy, xx = np.mgrid[0:ny, 0:nx]
    ra, dec = mos.meta.wcs(xx.ravel().astype(float), yy.ravel().astype(float))
    from scipy import ndimage

    cover = np.zeros(ny * nx, dtype=int)
    for m in l2_models:
        x, y = m.meta.wcs.invert(ra, dec)
        cover += (np.isfinite(x) & (x > -0.5) & (x < 255.5) & (y > -0.5) & (y < 255.5)).astype(int)
    cover = cover.reshape(ny, nx)
    finite = np.isfinite(data) & (data != 0)
    # every pixel well inside an input has data; nothing well outside all inputs does
    inside = ndimage.binary_erosion(cover > 0, iterations=2)
    outside = ~ndimage.binary_dilation(cover > 0, iterations=2)
    print(
        f"\nmosaic {nx}x{ny}: data on {finite[inside].mean():.4f} of covered pixels, "
        f"{finite[outside].sum()} outside"
    )
    assert finite[inside].mean() > 0.99
    assert not finite[outside].any()
    # seams: sky level per coverage depth, sources masked
    sky = finite & (data < np.nanmedian(data[finite]) + 3 * np.nanstd(data[finite & (cover > 0)]))
    levels = {}
    for k in (1, 2, 3):
        sel = sky & (cover == k)
        if sel.sum() > 200:
            v = data[sel]
            levels[k] = (np.median(v), 1.253 * np.std(v) / np.sqrt(v.size))
    print("\nsky by coverage:", {k: f"{m:.5f}±{s:.5f}" for k, (m, s) in levels.items()})
    assert len(levels) >= 2
    ks = sorted(levels)
    for a, b in zip(ks, ks[1:]):
        diff = abs(levels[a][0] - levels[b][0])
        assert diff < 5 * np.hypot(levels[a][1], levels[b][1]), (a, b, levels)
    # fluxes: 0.8" aperture photometry (about 90% of the light, so the slight broadening by
    # resampling does not matter) in the mosaic vs the mean of the L2 measurements
    cat = Table.read(field.mosaic.catalog)
    idx_m, ok_m = _match(cat, field.stars)
    l2f = []
    for sim in field.sims:
        c = _catalog(field, sim)
        idx, ok = _match(c, field.stars)
        l2f.append(np.where(ok, np.asarray(c["aper08_flux"], float)[idx], np.nan))
    l2mean = np.nanmean(np.array(l2f), axis=0)
    mf = np.where(ok_m, np.asarray(cat["aper08_flux"], float)[idx_m], np.nan)
    unsat = np.asarray(field.stars["F158"]) < 10 ** (-0.4 * 17.0)
    use = np.isfinite(mf) & np.isfinite(l2mean) & unsat & (l2mean > np.nanpercentile(l2mean, 50))
    ratio = mf[use] / l2mean[use]
    print(
        f"mosaic/L2 flux ratio over {use.sum()} stars: median {np.median(ratio):.4f}, "
        f"scatter {np.std(ratio):.4f}"
    )
    assert use.sum() >= 5
    assert abs(np.median(ratio) - 1) < 0.03


def test_products_record_how_they_were_made(field, l2_models):
    prov = l2_models[0].meta.platform_provenance
    assert prov["software"]["romancal"] and prov["software"]["stcal"]
    # The environment (release) it was calibrated in (issue 18): ROMAN_ENVIRONMENT on the
    # platform, "development" here, with the same versions as "software".
    env = prov["environment"]
    assert env["name"] and env["versions"]["romancal"] == prov["software"]["romancal"]
    assert prov["input"]["sha256"] and prov["config_sha256"]
    assert prov["step_parameters"]["tweakreg"]["abs_minobj"] == 5
    assert set(prov["skipped_steps"]) == {"refpix", "dark_decay"}
    refs = prov["reference_files"]
    for reftype in (
        "mask",
        "saturation",
        "linearity",
        "dark",
        "readnoise",
        "gain",
        "flat",
        "photom",
        "distortion",
        "apcorr",
    ):
        assert refs[reftype].startswith("roman_wfi_wfi01_"), reftype
    mos = field.mosaic.provenance
    assert len(mos["inputs"]) == len(field.sims)
