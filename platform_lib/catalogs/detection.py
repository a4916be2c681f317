"""Background, detection kernel, thresholded segmentation and hierarchical deblending.

The seed's static-catalog operations, in order: estimate and subtract the background, convolve
with a detection kernel, identify connected pixels above a noise-dependent threshold, and
hierarchically de-blend overlapping sources. Each is photutils' own implementation; this module
chooses the parameters from the image (PSF width, noise) so a user need not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.convolution import convolve
from astropy.stats import sigma_clipped_stats
from photutils.background import Background2D, MedianBackground, SExtractorBackground
from photutils.segmentation import (
    SegmentationImage,
    SourceFinder,
    deblend_sources,
    make_2dgaussian_kernel,
)

from .errors import CatalogInputError


@dataclass(frozen=True)
class DetectionConfig:
    """Knobs of detection; defaults suit Roman L2/L3 images at 0.11"/px and coarser mosaics."""

    box_size: int = 64  # background mesh, pixels; a few times the largest galaxy
    filter_size: int = 3  # median filter over background meshes
    kernel_fwhm: float | None = None  # pixels; default: the PSF FWHM, else 2.5 px
    nsigma: float = 3.0  # per-pixel threshold in units of the filtered image's noise
    npixels: int = 7  # minimum connected pixels
    nlevels: int = 64  # deblending: multi-thresholding levels
    contrast: float = 0.0005  # deblending: minimum flux fraction of a child
    connectivity: int = 8


@dataclass
class Detection:
    """Background-subtracted data, the smoothed detection image and the segmentation."""

    data_sub: np.ndarray  # data minus background
    background: np.ndarray
    background_rms: np.ndarray
    convolved: np.ndarray
    segmentation: SegmentationImage
    kernel_fwhm: float
    noise: np.ndarray  # per-pixel 1-sigma of ``convolved`` (measured)


def estimate_background(
    data: np.ndarray, mask: np.ndarray, config: DetectionConfig = DetectionConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """A smooth 2-D background and its RMS (SExtractor's mode estimator per mesh)."""
    ny, nx = data.shape
    box = max(8, min(config.box_size, ny // 2, nx // 2))
    estimator = SExtractorBackground() if min(ny, nx) >= 4 * box else MedianBackground()
    bkg = Background2D(
        data,
        box_size=box,
        filter_size=config.filter_size,
        mask=mask,
        bkg_estimator=estimator,
        exclude_percentile=50.0,
    )
    return np.asarray(bkg.background), np.asarray(bkg.background_rms)


# Radius (pixels) of the PSF core used to measure its width: the Roman PSF's rings and spikes
# beyond it would dominate second moments and say nothing about the core that detection and
# apertures care about; a fixed radius makes the width independent of the stamp size.
PSF_CORE_RADIUS = 4.0


def psf_fwhm_pixels(psf: np.ndarray | None) -> float | None:
    """Gaussian-equivalent FWHM of a centred PSF image from its core's second moments."""
    if psf is None:
        return None
    p = np.clip(np.asarray(psf, dtype=float), 0, None)
    ny, nx = p.shape
    y, x = np.mgrid[:ny, :nx]
    cy, cx = np.unravel_index(np.argmax(p), p.shape)
    r2 = (x - cx) ** 2 + (y - cy) ** 2
    w = p * (r2 <= PSF_CORE_RADIUS**2)
    mx, my = (w * x).sum() / w.sum(), (w * y).sum() / w.sum()
    sigma2 = (w * ((x - mx) ** 2 + (y - my) ** 2)).sum() / w.sum() / 2.0
    return float(2.3548 * np.sqrt(sigma2))


def multi_peak_labels(
    values: np.ndarray, labels: np.ndarray, connectivity: int = 8, min_area: int = 0
) -> np.ndarray:
    """The segment labels that hold more than one local maximum of ``values``.

    A maximum here is a pixel not below any neighbour (``connectivity`` 4 or 8) of its own
    segment. photutils' multi-thresholding deblender splits a segment only where, at some
    level, two connected regions of it lie above the level; each such region holds its own
    maximum, which is such a local maximum of the segment. A segment with one local maximum
    therefore comes back from the deblender unchanged, and skipping it changes nothing (ties
    count every pixel of a plateau, which only keeps more segments as candidates). Nor can a
    segment smaller than ``min_area`` (twice the deblender's minimum child size) split.
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    offsets = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if connectivity == 8:
        offsets += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    ny, nx = labels.shape
    peak = labels > 0
    for dy, dx in offsets:
        # centre pixels [ys, xs] against their neighbours [yn, xn]
        ys = slice(max(0, -dy), ny - max(0, dy))
        xs = slice(max(0, -dx), nx - max(0, dx))
        yn = slice(max(0, dy), ny - max(0, -dy))
        xn = slice(max(0, dx), nx - max(0, -dx))
        same = labels[ys, xs] == labels[yn, xn]
        peak[ys, xs] &= ~same | (values[ys, xs] >= values[yn, xn])
    counts = np.bincount(labels[peak], minlength=int(labels.max()) + 1)
    counts[0] = 0
    area = np.bincount(labels.ravel(), minlength=counts.size)
    return np.flatnonzero((counts > 1) & (area >= min_area))


def detect(
    data: np.ndarray,
    err: np.ndarray,
    mask: np.ndarray,
    *,
    psf: np.ndarray | None = None,
    config: DetectionConfig = DetectionConfig(),
) -> Detection:
    """Detect and deblend sources above a threshold that follows the noise pixel by pixel.

    The noise of the filtered image is measured, not predicted: PSF-matched or resampled
    images (L3 mosaics, multi-band detection images) have pixel-to-pixel correlated noise, so
    ``err * sqrt(sum K**2)`` would underestimate it several-fold and flood the catalog with
    noise peaks. The filtered image is divided by the error map's relative shape, its
    sigma-clipped RMS is taken over the whole image, and the threshold is that RMS times the
    relative error map, so it still rises where the exposure is shallower.
    """
    background, rms = estimate_background(data, mask, config)
    data_sub = np.where(mask, 0.0, data - background)
    fwhm = config.kernel_fwhm or psf_fwhm_pixels(psf) or 2.5
    size = int(2 * round(1.5 * fwhm) + 1)
    kernel = make_2dgaussian_kernel(fwhm, size=max(size, 3))
    convolved = convolve(data_sub, kernel, mask=mask, normalize_kernel=True, boundary="extend")
    rel = err / np.nanmedian(err[~mask])
    rel = np.where(mask | ~np.isfinite(rel) | (rel <= 0), np.inf, rel)
    _, _, filtered_rms = sigma_clipped_stats(convolved[~mask] / rel[~mask], sigma=3.0, maxiters=10)
    threshold = config.nsigma * filtered_rms * rel
    finder = SourceFinder(
        n_pixels=config.npixels,
        connectivity=config.connectivity,
        deblend=False,
        progress_bar=False,
    )
    segm = finder(convolved, threshold)
    if segm is None:
        raise CatalogInputError("no sources above the detection threshold in this image")
    # Deblend only the segments that can split: photutils' multi-thresholding was most of a
    # catalog's time, and most segments have a single peak (see multi_peak_labels).
    candidates = multi_peak_labels(
        convolved, segm.data, config.connectivity, min_area=2 * config.npixels
    )
    if candidates.size:
        segm = deblend_sources(
            convolved,
            segm,
            config.npixels,
            labels=candidates,
            n_levels=config.nlevels,
            contrast=config.contrast,
            connectivity=config.connectivity,
            progress_bar=False,
        )
    return Detection(
        data_sub=data_sub,
        background=background,
        background_rms=rms,
        convolved=convolved,
        segmentation=segm,
        kernel_fwhm=fwhm,
        noise=filtered_rms * rel,
    )


def detection_snr(det: Detection, labels: np.ndarray) -> np.ndarray:
    """Peak significance of each segment in the filtered image (its value over the measured
    noise of the filtered image, at the peak).

    The matched-filter statistic for a point source: a noise peak that passes the 3-sigma,
    7-pixel threshold rarely peaks above 4-5 sigma, while a real source's filtered peak grows
    with its flux without the noise of a large aperture. It separates real from false
    detections better than Kron S/N (tests/catalogs/test_purity.py).
    """
    from scipy import ndimage

    if len(labels) == 0:
        return np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sig = np.where(np.isfinite(det.noise), det.convolved / det.noise, 0.0)
    return np.asarray(ndimage.maximum(sig, labels=det.segmentation.data, index=labels), float)
