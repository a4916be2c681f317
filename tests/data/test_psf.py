"""The PSF library: built from galsim.roman, stored as EpsfRefModel, read as photutils models."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(300)

GRID = 3
OVERSAMPLE = 4


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    from platform_lib.data.index import build_index
    from platform_lib.data.psf import build_psf_library
    from platform_lib.data.store import get_store

    store = get_store(tmp_path_factory.mktemp("psfstore"))
    written = build_psf_library(
        store,
        detectors=["WFI04"],
        optical_elements=["F158"],
        grid=GRID,
        oversample=OVERSAMPLE,
        stamp=21,
    )
    assert written == ["psf/WFI04_F158_epsf.asdf"]
    build_index(store, progress=False)  # one file: read in this process
    return store


def _render(model, x, y, half=20):
    yy, xx = np.mgrid[int(y) - half : int(y) + half + 1, int(x) - half : int(x) + half + 1]
    return xx, yy, model(xx, yy)


def test_library_file_is_an_epsf_reference_and_indexed(library):
    import roman_datamodels as rdm

    from platform_lib.data import search

    with rdm.open(library.path("psf/WFI04_F158_epsf.asdf")) as m:
        assert type(m).__name__ == "EpsfRefModel"
        assert m.psf.shape == (1, 1, GRID * GRID, 21 * OVERSAMPLE, 21 * OVERSAMPLE)
        assert m.meta.instrument.detector == "WFI04" and m.meta.oversample == OVERSAMPLE
        sums = np.asarray(m.psf).sum(axis=(-1, -2))
        np.testing.assert_allclose(sums, OVERSAMPLE**2, rtol=1e-5)
    rows = search(level="PSF", store=library)
    assert list(rows["detector"]) == ["WFI04"] and list(rows["optical_element"]) == ["F158"]


@pytest.mark.parametrize("x, y", [(2043.5, 2043.5), (100.25, 3900.7), (3000.6, 812.3)])
def test_psf_is_normalized_and_centred_where_asked(library, x, y):
    from photutils.psf import GriddedPSFModel

    from platform_lib.data import psf

    model = psf("WFI04", "F158", x, y, store=library)
    assert isinstance(model, GriddedPSFModel)
    xx, yy, img = _render(model, x, y)
    # an undersampled PSF sampled at one phase sums to 1 only to within aliasing (~0.5 %)
    assert img.sum() == pytest.approx(1.0, abs=1e-2)
    assert (img * xx).sum() / img.sum() == pytest.approx(x, abs=0.05)
    assert (img * yy).sum() / img.sum() == pytest.approx(y, abs=0.05)
    model.flux = 250.0
    assert model(xx, yy).sum() == pytest.approx(250.0 * img.sum(), rel=1e-6)


def test_psf_varies_smoothly_across_the_detector(library):
    from platform_lib.data import psf

    # along the diagonal, stamps rendered at the same sub-pixel phase
    positions = np.round(np.linspace(4.0, 4083.0, 25))
    stamps = []
    for p in positions:
        _, _, img = _render(psf("WFI04", "F158", p, p, store=library), p, p, half=10)
        stamps.append(img)
    steps = np.array([np.abs(b - a).sum() for a, b in zip(stamps, stamps[1:])])
    corner_to_corner = np.abs(stamps[-1] - stamps[0]).sum()
    assert corner_to_corner > 1e-3  # the PSF does change across the detector
    assert steps.max() < 0.25 * corner_to_corner  # ... gradually, no jumps
    assert steps.max() < 4 * np.median(steps)


def test_psf_outside_detector_or_missing_library(library):
    from platform_lib.data import psf

    with pytest.raises(ValueError, match="outside"):
        psf("WFI04", "F158", -20, 10, store=library)
    with pytest.raises(FileNotFoundError, match="no PSF library file for WFI09 F087"):
        psf("WFI09", "F087", 10, 10, store=library)
