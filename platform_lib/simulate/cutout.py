"""What every cutout simulation shares: footprints, their gwcs, the reference border, the pixels.

A simulated product covers a *footprint* of a detector (the whole 4088² science array, or a
window of it for fast work and tests). Three simulators make products this way:
:func:`platform_lib.simulate.simulate_exposure` (romanisim's full instrument model), the
day-one sample survey (:mod:`platform_lib.sample`) and the calibration validation
exposures (:mod:`platform_lib.calibrate.synthetic`). They differ in their instrument model
(which PSF, which sky, which reference files), not in this, which lives here once: where a
window lies on the detector, the exposure's WCS (galsim.roman's, or a reference set's
distortion), the invertible gwcs of a window's pixels, how science pixels sit inside the
4-pixel reference border of an L1 frame, and how a window's electrons are drawn: the
catalogue's sources near it, sky, dark and QE, with Poisson noise (:func:`render_sources`,
romanisim's own renderer), and the same sources without noise (:func:`render_noiseless`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..instrument import REFERENCE_BORDER, SCIENCE_PIXELS
from .errors import SimulationInputError

__all__ = [
    "Footprint",
    "exposure_wcs",
    "fit_gwcs",
    "footprint_gwcs",
    "render_noiseless",
    "render_sources",
    "source_positions",
    "sources_near",
    "with_border",
    "without_border",
]

N_PIX = SCIENCE_PIXELS
B = REFERENCE_BORDER


@dataclass
class Footprint:
    """Science-pixel window of a detector: origin (x0, y0) and size (nx, ny)."""

    x0: int = 0
    y0: int = 0
    nx: int = N_PIX
    ny: int = N_PIX

    @classmethod
    def full(cls) -> Footprint:
        return cls()

    @classmethod
    def cutout(cls, size: int = 256, center: tuple[float, float] | None = None) -> Footprint:
        cx, cy = center if center is not None else (N_PIX / 2, N_PIX / 2)
        return cls(int(round(cx - size / 2)), int(round(cy - size / 2)), int(size), int(size))

    @classmethod
    def middle(cls, size: int) -> Footprint:
        """A ``size``² window whose origin is ``(4088 - size) // 2`` (the sample survey's)."""
        x0 = (N_PIX - int(size)) // 2
        return cls(x0, x0, int(size), int(size))

    @property
    def is_full(self) -> bool:
        return (self.x0, self.y0, self.nx, self.ny) == (0, 0, N_PIX, N_PIX)

    def check(self) -> Footprint:
        if self.nx < 8 or self.ny < 8:
            raise SimulationInputError("a footprint must be at least 8x8 pixels")
        if self.x0 < 0 or self.y0 < 0 or self.x0 + self.nx > N_PIX or self.y0 + self.ny > N_PIX:
            raise SimulationInputError(
                f"footprint {self} lies outside the detector's {N_PIX}x{N_PIX} science pixels"
            )
        return self

    def cut(self, value: Any) -> Any:
        """Cut a full-detector array (4088² science or 4096² with border) to the footprint."""
        if np.isscalar(value) or np.ndim(value) < 2:
            return value
        arr = np.asarray(value)
        shape = arr.shape[-2:]
        if shape == (self.ny, self.nx):
            return arr
        if shape == (N_PIX, N_PIX):
            return arr[..., self.y0 : self.y0 + self.ny, self.x0 : self.x0 + self.nx]
        if shape == (self.ny + 2 * B, self.nx + 2 * B) and (self.x0, self.y0) == (0, 0):
            # a sub-array reference set (lower-left corner of the detector, with its border)
            return without_border(arr)
        if shape == (N_PIX + 2 * B, N_PIX + 2 * B):
            return arr[
                ..., B + self.y0 : B + self.y0 + self.ny, B + self.x0 : B + self.x0 + self.nx
            ]
        raise SimulationInputError(
            f"reference array of shape {shape} fits neither the detector nor the footprint"
        )


def with_border(science: np.ndarray, fill: float = 0, dtype: Any = None) -> np.ndarray:
    """``science`` (..., ny, nx) inside a frame with the reference border, filled with ``fill``."""
    science = np.asarray(science)
    ny, nx = science.shape[-2:]
    out = np.full(
        science.shape[:-2] + (ny + 2 * B, nx + 2 * B),
        fill,
        dtype=science.dtype if dtype is None else dtype,
    )
    out[..., B:-B, B:-B] = science
    return out


def without_border(frame: np.ndarray) -> np.ndarray:
    """The science pixels (..., ny, nx) of a frame that carries the reference border (a view)."""
    return np.asarray(frame)[..., B:-B, B:-B]


def fit_gwcs(
    sky: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    nx: int,
    ny: int,
    *,
    degree: int = 5,
    nodes: int = 24,
    max_error_pix: float | None = 1e-3,
):
    """An invertible gwcs for an ``nx`` × ``ny`` image whose pixels map to the sky by ``sky``.

    ``sky(x, y)`` gives (ra, dec) in degrees of 0-based image pixels. It is sampled on a
    ``nodes`` × ``nodes`` grid over the image and fitted, forward and inverse, with
    polynomials of ``degree`` (``gwcs.wcstools.wcs_from_points``): the SIP-style WCS of
    galsim and romanisim has no inverse, so sky -> pixel would fail on it. With
    ``max_error_pix`` the inverse must reproduce ``sky`` to that many pixels on points between
    the nodes, or the fit is refused (RuntimeError) rather than written into a product.
    """
    from astropy.coordinates import SkyCoord
    from gwcs.wcstools import wcs_from_points

    gx, gy = np.meshgrid(np.linspace(-0.5, nx - 0.5, nodes), np.linspace(-0.5, ny - 0.5, nodes))
    gx, gy = gx.ravel(), gy.ravel()
    ra, dec = sky(gx, gy)
    gw = wcs_from_points((gx, gy), SkyCoord(ra, dec, unit="deg"), poly_degree=degree)
    gw.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    if max_error_pix is not None:
        tx, ty = np.meshgrid(np.linspace(0, nx - 1, 7), np.linspace(0, ny - 1, 7))
        tra, tdec = sky(tx.ravel(), ty.ravel())
        bx, by = gw.invert(tra, tdec, with_bounding_box=False)
        err = float(np.max(np.hypot(bx - tx.ravel(), by - ty.ravel())))
        if not err < max_error_pix:
            raise RuntimeError(f"WCS fit for the footprint is off by {err:.4f} px")
    return gw


def exposure_wcs(meta, distortion: str | None = None):
    """The exposure's WCS (galsim form, detector pixels): one geometry for truth and calibration.

    Without a distortion file it is galsim.roman's WCS, as romanisim uses without CRDS. With
    one (a reference set's ``distortion``), it is the same gwcs romancal's ``assign_wcs``
    builds from that file and the file's ``wcsinfo`` (V2/V3 reference point, roll, velocity
    aberration scale), via romanisim's ``make_wcs``. So positions survive
    simulate -> calibrate by construction.
    """
    from romanisim.models import wcs

    if not distortion:
        return wcs.get_wcs(meta, usecrds=False)
    import copy

    import roman_datamodels.datamodels as rdm
    from astropy.coordinates import SkyCoord

    with rdm.open(distortion) as m:
        transform = copy.deepcopy(m.coordinate_distortion_transform)
    info = meta.wcsinfo
    gw = wcs.make_wcs(
        SkyCoord(info.ra_ref, info.dec_ref, unit="deg"),
        transform,
        v2_ref=info.v2_ref,
        v3_ref=info.v3_ref,
        roll_ref=info.roll_ref,
        scale_factor=meta.velocity_aberration.scale_factor,
    )
    try:
        gw.bounding_box = transform.bounding_box.bounding_box(order="F")
    except NotImplementedError:
        gw.bounding_box = None
    return wcs.GWCS(gw)


def distortion_file(ref: dict | None) -> str | None:
    value = (ref or {}).get("distortion")
    return value if isinstance(value, str) else None


def footprint_gwcs(imwcs, fp: Footprint, degree: int = 5):
    """A gwcs for the file's pixels (0, 0 = the footprint's origin) that inverts too: galsim's
    WCS fitted over the footprint (:func:`fit_gwcs`), to 1 mpix or refused."""

    def sky(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ra, dec = imwcs._radec(x + fp.x0, y + fp.y0)
        return np.degrees(ra), np.degrees(dec)

    return fit_gwcs(sky, fp.nx, fp.ny, degree=degree, nodes=24, max_error_pix=1e-3)


# ---------------------------------------------------------------------------- the pixels
def source_positions(image, catalog) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions of a catalogue's ``ra``/``dec`` (degrees) through ``image``'s galsim WCS."""
    x, y = image.wcs._xy(
        np.radians(np.asarray(catalog["ra"], dtype=float)),
        np.radians(np.asarray(catalog["dec"], dtype=float)),
    )
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def sources_near(x: np.ndarray, y: np.ndarray, bounds, margin: float) -> np.ndarray:
    """Which sources lie within ``margin`` pixels of a galsim image's ``bounds`` (romanisim's rule).

    The renderer trims by the same rule, so what is selected here is exactly what it draws.
    """
    from romanisim.image import in_bounds

    return np.asarray(in_bounds(np.asarray(x), np.asarray(y), bounds, margin), dtype=bool)


def render_sources(
    image,
    catalog,
    *,
    exptime: float,
    psf,
    zpflux: float,
    filter_name: str,
    rng,
    xy: tuple[np.ndarray, np.ndarray] | None = None,
    margin: int = 10,
    sky=None,
    dark=None,
    qe=None,
    bandpass=None,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Electrons over an exposure on ``image`` (a galsim image with its WCS, bounds = the window).

    The sources of ``catalog`` (romanisim's table format: ``ra``, ``dec``, ``type``, profile
    columns, a flux in maggies per band; None for none) within ``margin`` pixels of the window,
    each drawn through ``psf`` with ``zpflux`` electrons per second per maggie, then sky
    (electrons per pixel per second, scaled by ``qe``) and dark, with Poisson noise:
    romanisim's ``simulate_counts_generic``, so every simulator draws its pixels one way.
    ``xy``: the sources' pixel positions, when they come from another WCS than ``image``'s
    (default: :func:`source_positions`).

    Returns ``(x, y, counts)`` for every catalogue row: its pixel position and the electrons it
    put on the window (0 when it lies farther away than ``margin``).
    """
    from romanisim import image as rimage

    if catalog is None:
        rimage.simulate_counts_generic(
            image, exptime, zpflux=zpflux, sky=sky, dark=dark, qe=qe, rng=rng, seed=seed
        )
        return np.zeros(0), np.zeros(0), np.zeros(0)
    x, y = xy if xy is not None else source_positions(image, catalog)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    near = sources_near(x, y, image.bounds, margin)
    simcat = rimage.simulate_counts_generic(
        image,
        exptime,
        objlist=catalog[near],
        xpos=x[near],
        ypos=y[near],
        psf=psf,
        zpflux=zpflux,
        sky=sky,
        dark=dark,
        qe=qe,
        bandpass=bandpass,
        filter_name=filter_name,
        rng=rng,
        seed=seed,
        ignore_distant_sources=margin,
    )
    counts = np.zeros(len(catalog))
    counts[np.flatnonzero(near)] = np.asarray(simcat["counts"], dtype=float)
    return x, y, counts


def render_noiseless(
    image,
    catalog,
    x: np.ndarray,
    y: np.ndarray,
    *,
    psf,
    flux_to_counts: float,
    filter_name: str,
    rng,
) -> None:
    """Add every source of ``catalog`` at pixel ``x``, ``y`` to ``image``, without noise.

    The same drawing as :func:`render_sources` (romanisim's ``add_objects_to_image``), for
    the truth a calibration should recover; ``flux_to_counts`` turns maggies into electrons.
    """
    from romanisim import catalog as rcat
    from romanisim import image as rimage

    objlist = rcat.table_to_catalog(catalog, [filter_name])
    rimage.add_objects_to_image(
        image, objlist, x, y, psf, flux_to_counts, filter_name=filter_name, rng=rng
    )
