"""The fast ePSF table build gives romanisim's table."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy.interpolate import RectBivariateSpline

from platform_lib.simulate.epsf import FastVariablePSF, spline_table


@pytest.mark.parametrize("order", [0, 1, 2])
def test_spline_table_is_fitpacks_grid_evaluation(order: int) -> None:
    rng = np.random.default_rng(order)
    dn, nover, t = 15, 8, 6
    xi = np.arange(dn * nover) / nover
    f = RectBivariateSpline(xi, xi, rng.normal(size=(dn * nover, dn * nover)), kx=3, ky=3)
    out = np.zeros((t + 1, t + 1, [1, 3, 6][order], dn, dn))
    spline_table(f, dn, t, order, out)
    derivs = [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)][: out.shape[2]]
    for i in range(t + 1):
        for j in range(t + 1):
            # the last offsets reach past the data (x = dn > dn - 1/8): fitpack clamps there
            x, y = np.arange(dn) + i / t, np.arange(dn) + j / t
            for term, (dx, dy) in enumerate(derivs):
                ref = f(x, y, dx=dx, dy=dy)
                np.testing.assert_allclose(
                    out[i, j, term], ref, rtol=0, atol=1e-12 * np.abs(ref).max()
                )


def test_fast_variable_psf_builds_romanisims_table() -> None:
    import galsim
    import galsim.roman
    import romanisim.psf

    logging.getLogger("romanisim").setLevel(logging.WARNING)
    wcs = galsim.roman.getWCS(
        galsim.CelestialCoord(270 * galsim.degrees, 66 * galsim.degrees), SCAs=[7]
    )[7]
    psf = romanisim.psf.make_psf(
        7, "F158", wcs=wcs, chromatic=False, psftype="galsim", variable=True
    )
    image = galsim.ImageF(4088, 4088, wcs=wcs)
    kw = dict(oversamp_render=4, oversamp_taylor=5, order=1, max_radius=6)
    ref = romanisim.psf.VariablePSF(psf.corners, psf.psf)
    ref.build_epsf_interpolator(image, **kw)
    fast = FastVariablePSF.from_variable(psf)
    fast.build_epsf_interpolator(image, **kw)
    assert fast.allarrays.dtype == ref.allarrays.dtype == np.float32
    assert fast.allarrays.shape == ref.allarrays.shape
    np.testing.assert_allclose(fast.allarrays, ref.allarrays, rtol=1e-5, atol=1e-9)
    assert fast.bounds == ref.bounds and fast.stampshape == ref.stampshape
    # and a drawn point source is the same stamp
    a, b = fast.draw_epsf(1234.3, 2987.8, 1e4), ref.draw_epsf(1234.3, 2987.8, 1e4)
    assert a.bounds == b.bounds
    np.testing.assert_allclose(a.array, b.array, rtol=1e-5, atol=1e-4)
