"""Static catalog of a full 4088x4088 detector: platform_lib vs photutils step by step vs SEP.

Each method runs in its own Python process on the same cached image (benchmarks/catalogs/
detector.py) so that its peak memory is its own: the figure printed is the process's peak
resident set minus the resident set right after the image was loaded (what the method itself
needed). Wall time covers the method only (not imports or loading). Completeness against the
simulation's truth (match within 2 pixels, by magnitude) shows the methods did comparable work.

    .venv/bin/python benchmarks/catalogs/bench_static.py            # all three, ratios vs photutils
    .venv/bin/python benchmarks/catalogs/bench_static.py --method sep   # one, JSON
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))
import detector  # noqa: E402

CACHE = Path(os.environ.get("ROMAN_BENCH_CACHE", "/tmp/roman-bench-catalogs")) / "detector_f158.npz"
# The parameters every method shares (platform_lib's DetectionConfig defaults).
BOX, FILTER, NSIGMA, NPIXELS, NLEVELS, CONTRAST = 64, 3, 3.0, 7, 64, 0.0005
APER_RADIUS_PIX = 0.4 / detector.PIXEL_SCALE


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_platform(sim) -> tuple[np.ndarray, np.ndarray]:
    from platform_lib.catalogs import CatalogImage, single_band

    img = CatalogImage(
        sim["data"], sim["err"], detector.wcs(), "F158", psf=sim["psf"], name="detector"
    )
    cat = single_band(img)
    return np.asarray(cat.table["x"]), np.asarray(cat.table["y"])


def run_photutils(sim) -> tuple[np.ndarray, np.ndarray]:
    """photutils' documented pipeline, one call per step, with the same parameters."""
    from astropy.convolution import convolve
    from photutils.background import Background2D, SExtractorBackground
    from photutils.segmentation import SourceCatalog, SourceFinder, make_2dgaussian_kernel

    from platform_lib.catalogs.detection import psf_fwhm_pixels

    data, err = sim["data"].astype(float), sim["err"].astype(float)
    bkg = Background2D(
        data,
        box_size=BOX,
        filter_size=FILTER,
        bkg_estimator=SExtractorBackground(),
        exclude_percentile=50.0,
    )
    sub = data - bkg.background
    fwhm = psf_fwhm_pixels(sim["psf"])
    if fwhm is None:
        raise RuntimeError("the simulated PSF has no measurable FWHM")
    kernel = make_2dgaussian_kernel(fwhm, size=int(2 * round(1.5 * fwhm) + 1))
    conv = convolve(sub, kernel)
    finder = SourceFinder(
        n_pixels=NPIXELS, deblend=True, n_levels=NLEVELS, contrast=CONTRAST, progress_bar=False
    )
    segm = finder(conv, NSIGMA * bkg.background_rms)
    cat = SourceCatalog(sub, segm, convolved_data=conv, error=err, background=bkg.background)
    t = cat.to_table(
        columns=[
            "label",
            "xcentroid",
            "ycentroid",
            "segment_flux",
            "segment_fluxerr",
            "kron_flux",
            "kron_fluxerr",
            "semimajor_sigma",
            "semiminor_sigma",
            "orientation",
            "ellipticity",
            "fwhm",
            "area",
            "local_background",
        ]
    )
    cat.circular_photometry(APER_RADIUS_PIX)
    return np.asarray(t["xcentroid"]), np.asarray(t["ycentroid"])


def run_sep(sim) -> tuple[np.ndarray, np.ndarray]:
    import sep
    from photutils.segmentation import make_2dgaussian_kernel

    from platform_lib.catalogs.detection import psf_fwhm_pixels

    data = np.ascontiguousarray(sim["data"], dtype=np.float64)
    err = np.ascontiguousarray(sim["err"], dtype=np.float64)
    bkg = sep.Background(data, bw=BOX, bh=BOX, fw=FILTER, fh=FILTER)
    sub = data - bkg.back()
    fwhm = psf_fwhm_pixels(sim["psf"])
    if fwhm is None:
        raise RuntimeError("the simulated PSF has no measurable FWHM")
    kernel = np.asarray(make_2dgaussian_kernel(fwhm, size=int(2 * round(1.5 * fwhm) + 1)).array)
    sep.set_extract_pixstack(5_000_000)
    sep.set_sub_object_limit(4096)
    objs = sep.extract(
        sub,
        NSIGMA,
        err=bkg.rms(),
        minarea=NPIXELS,
        filter_kernel=kernel,
        deblend_nthresh=NLEVELS,
        deblend_cont=CONTRAST,
    )
    sep.sum_circle(sub, objs["x"], objs["y"], APER_RADIUS_PIX, err=err)
    kr, _ = sep.kron_radius(sub, objs["x"], objs["y"], objs["a"], objs["b"], objs["theta"], 6.0)
    sep.sum_ellipse(
        sub, objs["x"], objs["y"], objs["a"], objs["b"], objs["theta"], 2.5 * kr, err=err, subpix=1
    )
    return np.asarray(objs["x"]), np.asarray(objs["y"])


METHODS = {"platform_lib": run_platform, "photutils_steps": run_photutils, "sep": run_sep}


def one(method: str) -> dict:
    sim = detector.simulate(CACHE)
    base_rss = _rss_mb()
    t0 = time.perf_counter()
    x, y = METHODS[method](sim)
    wall = time.perf_counter() - t0
    from scipy.spatial import cKDTree

    d, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([sim["x"], sim["y"]]))
    found = d < 2.0
    mag = sim["mag"]
    compl = {
        f"{lo:.0f}-{lo + 1:.0f}": float(found[(mag >= lo) & (mag < lo + 1)].mean())
        for lo in range(20, 26)
    }
    # Purity: detections within 2 px of a true source (deblended pieces of a galaxy count as
    # impure, so this is a lower bound for galaxies).
    dd, _ = cKDTree(np.column_stack([sim["x"], sim["y"]])).query(np.column_stack([x, y]))
    return {
        "method": method,
        "wall_s": wall,
        "peak_extra_mb": _peak_mb() - base_rss,
        "n_sources": int(len(x)),
        "purity": float(np.mean(dd < 2.0)),
        "completeness_by_mag": compl,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--method", choices=sorted(METHODS), help="run one method in this process, print JSON"
    )
    args = ap.parse_args()
    if args.method:
        print(json.dumps(one(args.method)))
        return 0
    print(f"image: {CACHE} (simulated on first use)", flush=True)
    detector.simulate(CACHE)
    results = {}
    for m in ("photutils_steps", "platform_lib", "sep"):
        out = subprocess.run(
            [sys.executable, __file__, "--method", m], capture_output=True, text=True, check=True
        )
        results[m] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {m}: {results[m]['wall_s']:.1f} s", flush=True)
    base = results["photutils_steps"]
    print(
        f"\n{'method':<16}{'wall s':>8}{'x base':>8}{'peak MB':>9}{'x base':>8}{'n':>7}{'purity':>8}   completeness by mag (20..26)"
    )
    for m, r in results.items():
        c = " ".join(f"{v:.2f}" for v in r["completeness_by_mag"].values())
        print(
            f"{m:<16}{r['wall_s']:>8.1f}{r['wall_s'] / base['wall_s']:>8.2f}{r['peak_extra_mb']:>9.0f}"
            f"{r['peak_extra_mb'] / base['peak_extra_mb']:>8.2f}{r['n_sources']:>7}{r['purity']:>8.3f}   {c}"
        )
    print(
        "baseline: photutils step by step (Background2D -> convolve -> SourceFinder -> SourceCatalog)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
