"""Images: the star's flux is the catalog flux through the throughput; files are roman_datamodels'."""

from __future__ import annotations

import numpy as np
import pytest
import roman_datamodels as rdm
from astropy.table import Table

from platform_lib.simulate import (
    MosaicSpec,
    simulate_mosaic,
    sources,
    write_product,
    zeropoint_rate,
)


def _encircled_energy(spec, radius: float) -> float:
    """Fraction of the same galsim PSF (same detector position) inside ``radius`` pixels."""
    import galsim
    import romanisim.psf
    from romanisim.models import wcs

    from platform_lib.simulate.images import _metadata

    imwcs = wcs.get_wcs(_metadata(spec).meta, usecrds=False)
    fp = spec.footprint
    centre = (fp.x0 + fp.nx / 2, fp.y0 + fp.ny / 2)
    psf = romanisim.psf.make_psf(
        int(spec.detector[3:]), spec.optical_element, wcs=imwcs, psftype="galsim", pix=centre
    )
    local = imwcs.local(galsim.PositionD(*centre))
    image = galsim.DeltaFunction().withFlux(1.0)
    stamp = galsim.Convolve(image, psf).drawImage(nx=512, ny=512, wcs=local)
    arr = stamp.array
    yy, xx = np.mgrid[: arr.shape[0], : arr.shape[1]]
    r = np.hypot(xx - (arr.shape[1] - 1) / 2, yy - (arr.shape[0] - 1) / 2)
    return float(arr[r < radius].sum() / arr.sum())


def test_isolated_star_flux_matches_catalog_after_throughput(star_exposure) -> None:
    """Aperture flux (background-subtracted, corrected by the PSF's encircled energy) equals
    catalog maggies x the F158 zero-point rate of WFI02 (the throughput), within 2%.

    The star gives ~3e5 electrons (Poisson 0.2%); the remaining tolerance covers the ramp
    fit's small bias and the rendering stamp's truncation of the PSF wings.
    """
    spec, cat, sim = star_exposure
    truth = sim.truth
    rate_dn = float(cat["F158"][0]) * zeropoint_rate("F158", "WFI02") / 2.0  # gain 2 e-/DN
    assert truth["rate_dn"][0] == pytest.approx(rate_dn)
    data = np.asarray(sim.model.data, dtype=float)
    yy, xx = np.mgrid[: data.shape[0], : data.shape[1]]
    r = np.hypot(xx - truth["x"][0], yy - truth["y"][0])
    radius = 30.0
    background = np.median(data[r > 50])
    measured = (data[r < radius] - background).sum()
    assert measured / _encircled_energy(spec, radius) == pytest.approx(rate_dn, rel=0.02)
    # and the star sits where the truth says
    peak = np.unravel_index(np.argmax(data), data.shape)
    assert abs(peak[1] - truth["x"][0]) <= 1 and abs(peak[0] - truth["y"][0]) <= 1


def test_files_are_roman_datamodels_with_truth_beside(star_exposure, tmp_path) -> None:
    spec, cat, sim = star_exposure
    paths = write_product(sim, str(tmp_path), spec.filename)
    with rdm.open(paths["image"]) as model:
        assert type(model).__name__ == "ImageModel"
        assert model.data.shape == (128, 128)
        assert model.meta.instrument.optical_element == "F158"
        # the cutout's WCS puts the star where the truth catalog says
        x, y = model.meta.wcs.world_to_pixel_values(cat["ra"][0], cat["dec"][0])
    truth = Table.read(paths["truth"], format="ascii.ecsv")
    assert paths["truth"].endswith("_cal_truth.ecsv")
    assert x == pytest.approx(truth["x"][0], abs=0.05)
    assert y == pytest.approx(truth["y"][0], abs=0.05)


def test_l3_mosaic_flux_and_format(tmp_path) -> None:
    """A mosaic holds the star's flux (MJy/sr x pixel area) at the truth position."""
    spec = MosaicSpec(optical_element="F158", ra=10.0, dec=-30.0, shape=(96, 96), seed=2)
    cat = sources([10.0], [-30.0], [19.0], elements=["F158"])
    sim = simulate_mosaic(cat, spec)
    paths = write_product(sim, str(tmp_path), spec.filename)
    with rdm.open(paths["image"]) as model:
        assert type(model).__name__ == "MosaicModel"
        data = np.asarray(model.data, dtype=float)
    t = sim.truth
    assert abs(t["x"][0] - 48) < 1 and abs(t["y"][0] - 48) < 1
    peak = np.unravel_index(np.argmax(data), data.shape)
    assert abs(peak[1] - t["x"][0]) <= 1 and abs(peak[0] - t["y"][0]) <= 1
    # total flux: MJy/sr summed over pixels x pixel solid angle -> Jy -> maggies
    pix_sr = (spec.pixel_scale / 206264.806) ** 2
    yy, xx = np.mgrid[: data.shape[0], : data.shape[1]]
    r = np.hypot(xx - t["x"][0], yy - t["y"][0])
    flux_jy = (data[r < 40] - np.median(data[r > 44])).sum() * 1e6 * pix_sr
    assert flux_jy / 3631 == pytest.approx(float(cat["F158"][0]), rel=0.08)
