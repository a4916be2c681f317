"""romanisim's fast point-source PSF, with its set-up made fast.

For a full detector romanisim draws point sources from a Taylor-expanded ePSF table
(``romanisim.psf.VariablePSF.build_epsf_interpolator``): for each of the four corner PSFs it
renders 64 sub-pixel dithers with galsim, fits a bicubic spline through them and evaluates the
spline and its two first derivatives at 51 × 51 sub-pixel offsets of the 201² stamp. Those
7,803 grid evaluations per corner through fitpack were 280 s of the set-up here (the galsim
renders 10 s), and the float64 copy of each corner's table added 2.5 GB to the 5 GB table.

:class:`FastVariablePSF` builds the same table from the same renders and the same spline, but
evaluates the spline as the tensor product it is: with ``Bx``, ``By`` the B-spline design
matrices (4 non-zeros a row) at the offsets, ``F = Bx · C · Byᵀ`` for the coefficient matrix ``C``,
and a derivative is the same product with the derivative spline's coefficients (degree 2).
fitpack clamps arguments outside the knot span to its ends; so does this. The values agree with
fitpack's to float64 rounding (the table is float32), ``tests/simulate/test_epsf.py``. Each
corner is written straight into the float32 table.
"""

from __future__ import annotations

import numpy as np
from romanisim.psf import VariablePSF
from scipy.interpolate import BSpline, RectBivariateSpline

CORNERS = ("ll", "lr", "ul", "ur")


def _design(points: np.ndarray, knots: np.ndarray, k: int):
    lo, hi = knots[k], knots[len(knots) - k - 1]
    return BSpline.design_matrix(np.clip(points, lo, hi), knots, k).tocsr()


def _derivative_coefficients(c: np.ndarray, t: np.ndarray, k: int, axis: int):
    """Coefficients and knots of d/d(axis) of a spline of degree k along that axis."""
    c = np.moveaxis(c, axis, 0)
    n = c.shape[0]
    denom = (t[k + 1 : k + n] - t[1:n]).reshape((-1,) + (1,) * (c.ndim - 1))
    dc = k * (c[1:] - c[:-1]) / denom
    return np.moveaxis(dc, 0, axis), t[1:-1]


def spline_table(
    f: RectBivariateSpline, dn: int, oversamp: int, order: int, out: np.ndarray
) -> None:
    """Fill ``out[i, j, term] = f(arange(dn) + i/oversamp, arange(dn) + j/oversamp, d_term)``.

    ``out`` has shape (oversamp+1, oversamp+1, nterms, dn, dn); the terms are romanisim's:
    value, d/dx, d/dy (order 1), then d²/dx², d²/dxdy, d²/dy² (order 2).
    """
    tx, ty, coef = f.tck
    kx, ky = f.degrees
    c = coef.reshape(len(tx) - kx - 1, len(ty) - ky - 1)
    frac = np.arange(oversamp + 1) / oversamp
    pts = (np.arange(dn)[None, :] + frac[:, None]).ravel()  # offset i's points: pts[i*dn:(i+1)*dn]
    derivs = [(0, 0)]
    if order >= 1:
        derivs += [(1, 0), (0, 1)]
    if order == 2:
        derivs += [(2, 0), (1, 1), (0, 2)]
    for term, (dx, dy) in enumerate(derivs):
        cc, txx, tyy, kxx, kyy = c, tx, ty, kx, ky
        for _ in range(dx):
            cc, txx = _derivative_coefficients(cc, txx, kxx, 0)
            kxx -= 1
        for _ in range(dy):
            cc, tyy = _derivative_coefficients(cc, tyy, kyy, 1)
            kyy -= 1
        by = _design(pts, tyy, kyy)
        right = np.ascontiguousarray((by @ cc.T).T)  # C · Byᵀ: (ncoef_x, (oversamp+1)*dn)
        # Bx has kxx+1 consecutive non-zeros a row: F[r] = sum_q w[r, q] * right[start[r] + q]
        bx = _design(pts, txx, kxx)
        width = kxx + 1
        start = bx.indices.reshape(-1, width).min(axis=1)
        weight = np.zeros((len(pts), width))
        for r0 in range(width):
            weight[:, r0] = np.asarray(bx[np.arange(len(pts)), start + r0]).ravel()
        for i in range(oversamp + 1):
            rows = slice(i * dn, (i + 1) * dn)
            block = weight[rows, 0, None] * right[start[rows]]
            for q in range(1, width):
                block += weight[rows, q, None] * right[start[rows] + q]
            out[i, :, term] = block.reshape(dn, oversamp + 1, dn).transpose(1, 0, 2)


class FastVariablePSF(VariablePSF):
    """romanisim's :class:`~romanisim.psf.VariablePSF` with a fast ePSF table build."""

    @classmethod
    def from_variable(cls, psf: VariablePSF) -> FastVariablePSF:
        return cls(psf.corners, psf.psf)

    def build_epsf_interpolator(
        self,
        image,
        oversamp_render=8,
        oversamp_taylor=50,
        order=1,
        max_radius=100,
        epsf=False,
    ):
        import galsim

        if order not in [0, 1, 2]:
            raise ValueError("Fast PSF interpolation only available for orders 0, 1, or 2.")
        # the same stamp, renders and spline as romanisim 0.14's build_epsf_interpolator
        pointsource = galsim.DeltaFunction()
        p = galsim.Convolve(pointsource, self.psf["ll"])
        pwcs = image.wcs.local(galsim.PositionD(self.corners["ll"][0], self.corners["ll"][1]))
        bounds = p.drawImage(center=(-0.5, -0.5), wcs=pwcs).bounds
        ncenter = min(max(-bounds.getXMin(), -bounds.getYMin()), max_radius)
        bounds = galsim.BoundsI(-ncenter, ncenter, -ncenter, ncenter)
        dn = 2 * ncenter + 1
        self.bounds = bounds
        self.oversamp_taylor = oversamp_taylor
        self.order = order
        self.stampshape = (dn, dn)
        nover = oversamp_render
        xinterp = np.arange(dn * nover) * 1.0 / nover
        nterms = [1, 3, 6][order]
        shape = (oversamp_taylor + 1, oversamp_taylor + 1, 4, nterms, dn, dn)
        self.allarrays = np.zeros(shape, order="C", dtype=np.float32)
        self.psfinterpolators = dict.fromkeys(CORNERS)
        method = "no_pixel" if epsf else "auto"
        for iloc, key in enumerate(CORNERS):
            pwcs = image.wcs.local(galsim.PositionD(self.corners[key][1], self.corners[key][0]))
            p = galsim.Convolve(pointsource, self.psf[key])
            allrendered = np.zeros((dn * nover, dn * nover))
            for i in range(nover):
                for j in range(nover):
                    im = p.drawImage(
                        center=(-j / nover, -i / nover), wcs=pwcs, bounds=bounds, method=method
                    )
                    allrendered[i::nover, j::nover] = im.array
            f = RectBivariateSpline(xinterp, xinterp, allrendered, kx=3, ky=3)
            spline_table(f, dn, oversamp_taylor, order, self.allarrays[:, :, iloc])
            self.psfinterpolators[key] = self.allarrays[:, :, iloc]
