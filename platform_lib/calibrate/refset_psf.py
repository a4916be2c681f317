"""The PSF a reference-file set is derived from, and what the set records of it.

The ePSF, the aperture corrections and the simulated stars share one PSF: romanisim's own
(``psf_utils.getPSF``, galsim settings), drawn in the set's pixel frame, integrated over a
native pixel (optionally with the detector's IPC), and measured by its encircled energy.
:mod:`.reference_files` builds the set's ``epsf`` and ``apcorr`` files from these.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

__all__ = [
    "EPSF_OVERSAMPLE",
    "EPSF_STAMP",
    "apply_ipc_oversampled",
    "encircled_energy_radii",
    "pixel_integrated_psf",
    "simulator_psf",
]


class DetectorWindow(Protocol):
    """Where a set lies: its detector and its size in science pixels (a ``RefSetSpec``)."""

    detector: str
    size: int


EPSF_OVERSAMPLE = 4
EPSF_STAMP = 257  # 64 native pixels at 4x, odd so the centre is a pixel


def simulator_psf(spec: DetectorWindow, optical_element: str) -> Any:
    """romanisim's PSF for this detector and band, in this set's pixel frame (units: pixels).

    The same PSF the simulator draws (romanisim's own ``psf_utils.getPSF`` with its galsim
    settings), so the ePSF, the aperture corrections and the simulated stars share one PSF.
    romanisim returns it in arcsec *parallel to the detector's pixel axes*; dividing by the
    pixel scale gives the pixel-frame PSF without a sky WCS. It is drawn at the set's centre
    on the detector (a sub-array set is the detector's lower-left corner), where
    ``platform_lib.simulate`` draws the PSF of that footprint.
    """
    import galsim
    from romanisim.models import bandpass as rbp
    from romanisim.models.parameters import pixel_scale
    from romanisim.models.psf_utils import getPSF

    band = rbp.getBandpasses(AB_zeropoint=True)[rbp.roman2galsim_bandpass[optical_element]]
    psf = getPSF(
        int(spec.detector[3:]),
        None,
        SCA_pos=galsim.PositionD(spec.size / 2, spec.size / 2),
        wavelength=band,
        pupil_bin=8,
    )
    return galsim.PixelScale(pixel_scale).toImage(psf)


def pixel_integrated_psf(
    psf: Any,
    oversample: int = EPSF_OVERSAMPLE,
    size: int = EPSF_STAMP,
    ipc_kernel: np.ndarray | None = None,
) -> np.ndarray:
    """The PSF integrated over a native pixel, sampled ``oversample`` times finer.

    Normalised to the *total* flux of the PSF (the profile's flux, 1), not to the stamp: the
    64-pixel (7") stamp holds only 97-99 % of the light (less in the red bands), and a PSF fit
    with a stamp renormalised to 1 returns the stamp's share of the flux, not the total. With
    ``ipc_kernel`` (3x3, native pixels) the stamp is also convolved with the inter-pixel
    capacitance the detector applies, so it is the response a star really leaves in an L2
    image.
    """
    import galsim

    prof = galsim.Convolve(psf, galsim.Pixel(1.0))
    img = prof.drawImage(nx=size, ny=size, scale=1.0 / oversample, method="no_pixel")
    a = img.array.astype(np.float64) / float(prof.flux)
    if ipc_kernel is not None:
        a = apply_ipc_oversampled(a, ipc_kernel, oversample)
    return a


def apply_ipc_oversampled(stamp: np.ndarray, kernel: np.ndarray, oversample: int) -> np.ndarray:
    """Convolve an oversampled stamp with a native-pixel 3x3 kernel (taps ``oversample`` apart)."""
    from scipy import ndimage

    k = np.asarray(kernel, dtype=np.float64)
    k = k / k.sum()
    big = np.zeros((2 * oversample + 1, 2 * oversample + 1))
    big[::oversample, ::oversample] = k
    return ndimage.convolve(stamp, big, mode="constant", cval=0.0)


def encircled_energy_radii(
    stamp: np.ndarray,
    fractions: tuple[float, ...],
    oversample: int = EPSF_OVERSAMPLE,
    total: float = 1.0,
) -> np.ndarray:
    """Radii (native pixels) enclosing each fraction of the total energy (``total``, the
    profile's flux; not the stamp's sum, which misses the wings)."""
    y, x = np.indices(stamp.shape)
    c = (np.array(stamp.shape) - 1) / 2.0
    r = np.hypot(x - c[1], y - c[0]).ravel() / oversample
    order = np.argsort(r)
    cum = np.cumsum(stamp.ravel()[order]) / total
    rs = r[order]
    return np.array([float(np.interp(f, cum, rs)) for f in fractions])
