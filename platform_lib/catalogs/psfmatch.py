"""PSF-matching kernels: bring every band's image to one reference PSF before colours are taken.

The kernel is the Fourier ratio target/source, regularised (Tikhonov / Wiener-like) where the
source has little power, rather than photutils' ``make_kernel`` with a taper window: Roman's PSFs
are undersampled, so they carry power up to the Nyquist frequency, and a window that zeroes the
upper half of the frequencies (photutils' SplitCosineBell(0.35, 0.15)) turned a 2.3-pixel F158
target into a 3.5-pixel matched F087 PSF (L1 residual 1.0); the regularised ratio matches it to
an L1 residual of 0.003 (measured on the sample's PSF library; docs/catalogs.md). The reference
is the broadest PSF (matching to a narrower one would need deconvolution), and the error array
is propagated through the same convolution so uncertainties stay honest.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

from .detection import psf_fwhm_pixels
from .errors import CatalogInputError


def _pad_to(psf: np.ndarray, size: int) -> np.ndarray:
    ny, nx = psf.shape
    out = np.zeros((size, size))
    oy, ox = (size - ny) // 2, (size - nx) // 2
    out[oy : oy + ny, ox : ox + nx] = psf
    return out / out.sum()


def broadest(psfs: dict[str, np.ndarray]) -> str:
    """The band whose PSF is widest: the only reference every other band can be matched to."""
    widths = {band: psf_fwhm_pixels(p) or 0.0 for band, p in psfs.items()}
    return max(widths, key=widths.__getitem__)


# Tikhonov regularisation, relative to the source's peak Fourier power: frequencies where the
# source has less than ~3% of its peak amplitude are damped instead of amplified without bound.
REGULARISATION = 1e-3


def matching_kernel(
    source_psf: np.ndarray, target_psf: np.ndarray, *, regularisation: float = REGULARISATION
) -> np.ndarray:
    """Kernel K with source * K ≈ target; both PSFs are padded to one odd size.

    ``K = F⁻¹[T S* / (|S|² + λ max|S|²)]``: the least-squares kernel with a ridge penalty.
    """
    if (psf_fwhm_pixels(source_psf) or 0) > 1.02 * (psf_fwhm_pixels(target_psf) or 0):
        raise CatalogInputError(
            "the target PSF is narrower than the source PSF; cannot match to it"
        )
    size = max(*source_psf.shape, *target_psf.shape)
    size += 1 - size % 2
    src, tgt = _pad_to(source_psf, size), _pad_to(target_psf, size)
    sf = np.fft.fft2(np.fft.ifftshift(src))
    tf = np.fft.fft2(np.fft.ifftshift(tgt))
    power = np.abs(sf) ** 2
    kf = tf * np.conj(sf) / (power + regularisation * power.max())
    kernel = np.fft.fftshift(np.real(np.fft.ifft2(kf)))
    return kernel / kernel.sum()


def convolve_image(
    data: np.ndarray, err: np.ndarray, mask: np.ndarray, kernel: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Convolve data with ``kernel`` and propagate the per-pixel variance (err**2 * kernel**2).

    The propagated error ignores the pixel-to-pixel covariance the convolution creates; aperture
    sums over many pixels of a convolved image are therefore slightly under-estimated, which
    docs/catalogs.md quantifies. Masked pixels are zeroed before and re-masked after.
    """
    d = np.where(mask, 0.0, data)
    v = np.where(mask, 0.0, err**2)
    out = fftconvolve(d, kernel, mode="same")
    var = fftconvolve(v, kernel**2, mode="same")
    return out, np.sqrt(np.clip(var, 0, None))


def convolve_psf(psf: np.ndarray, kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The PSF a matched image really has (psf * kernel), centred in ``shape``."""
    size = max(*psf.shape, *kernel.shape, *shape)
    size += 1 - size % 2
    out = fftconvolve(_pad_to(psf, size), kernel, mode="same")
    ny, nx = shape
    oy, ox = (size - ny) // 2, (size - nx) // 2
    out = out[oy : oy + ny, ox : ox + nx]
    return out / out.sum()
