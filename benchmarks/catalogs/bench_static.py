"""One image, one run: platform_lib's single-band catalog vs photutils' recipe vs SEP.

The set-up draws a dense field (benchmarks/catalogs/detector.py: galsim's Roman F158 PSF, stars
and Sersic galaxies, sky, read and shot noise) at the density of the held-out detector of
issue 22, 3,000 stars and 12,000 galaxies per 4088² detector, scaled to ``--size`` (default
2048²; ``--size 4088`` is the full detector). It is cached in ``ROMAN_BENCH_CACHE``
(/tmp/roman-bench-catalogs). Every method then catalogues the same image with the same detection
parameters (platform_lib's ``DetectionConfig`` defaults) and the same measurements (segment,
Kron and 0.4" aperture fluxes, centroids, shapes):

- ``platform_lib``: ``single_band`` on a ``CatalogImage``, the single-image light path (no Dask
  cluster is started); ``platform_lib_pure`` is the same catalog's ``.pure()`` product;
- ``photutils_recipe``: photutils' documented recipe, one call per step (Background2D →
  convolve → SourceFinder → SourceCatalog);
- ``sep``: SEP's documented recipe (Background → extract → sum_circle, kron_radius,
  sum_ellipse).

Each timed run is its own Python process (``--method NAME`` runs one and prints JSON), methods
in turn, round after round (A B C A B C ...), so the ratio to the recipe is taken within each
round and its median quoted. Wall time covers the method only (not imports or reading the
image); peak memory is the process's peak resident set minus its resident set after reading the
image (``ru_maxrss``). Against the truth (a detection within 2 px of a true source):
completeness per true magnitude bin, and purity per bin of *measured* magnitude (0.4" aperture
flux over the PSF's encircled energy at 0.4"). The inverted-image check runs every method on
``-data``: what it finds there are noise peaks, so ``1 - n_inverted / n`` estimates purity
without truth.

    nice -n 10 .venv/bin/python benchmarks/catalogs/bench_static.py [--size 2048] [--rounds 3]

Prints a table and writes the figures as JSON (``--json``, default
/tmp/roman-bench-catalogs/bench_static_<size>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

CACHE_DIR = Path(os.environ.get("ROMAN_BENCH_CACHE", "/tmp/roman-bench-catalogs"))
# the full-detector image of bench_diffim.py (2500 stars, 1000 galaxies)
CACHE = CACHE_DIR / "detector_f158.npz"
# The parameters every method shares (platform_lib's DetectionConfig defaults).
BOX, FILTER, NSIGMA, NPIXELS, NLEVELS, CONTRAST = 64, 3, 3.0, 7, 64, 0.0005
APER_RADIUS_PIX = 0.4 / detector.PIXEL_SCALE
STARS_PER_DETECTOR, GALAXIES_PER_DETECTOR = 3000, 12000
MATCH_PIX = 2.0
MAG_BINS = [(18, 21), (21, 22), (22, 23), (23, 23.5), (23.5, 24), (24, 24.5), (24.5, 25), (25, 26)]
ORDER = ("photutils_recipe", "platform_lib", "sep")


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cache_path(size: int, seed: int) -> Path:
    return CACHE_DIR / f"dense_f158_{size}_s{seed}.npz"


def field(size: int, seed: int) -> dict[str, np.ndarray]:
    scale = (size / detector.SIZE) ** 2
    return detector.simulate(
        cache_path(size, seed),
        n_stars=int(round(STARS_PER_DETECTOR * scale)),
        n_gal=int(round(GALAXIES_PER_DETECTOR * scale)),
        seed=seed,
        size=size,
    )


def run_platform(sim, pure: bool = False):
    from platform_lib.catalogs import CatalogImage, single_band

    shape = sim["data"].shape
    img = CatalogImage(
        sim["data"], sim["err"], detector.wcs(shape[0]), "F158", psf=sim["psf"], name="bench"
    )
    cat = single_band(img)
    t = cat.pure() if pure else cat.table
    return (
        np.asarray(t["x"]),
        np.asarray(t["y"]),
        np.asarray(getattr(t["aper040_flux"], "value", t["aper040_flux"]), dtype=float),
    )


def run_photutils(sim):
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
    if segm is None:
        return np.zeros(0), np.zeros(0), np.zeros(0)
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
    flux, _ = cat.circular_photometry(APER_RADIUS_PIX)
    return np.asarray(t["xcentroid"]), np.asarray(t["ycentroid"]), np.asarray(flux, dtype=float)


def run_sep(sim):
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
    flux, _, _ = sep.sum_circle(sub, objs["x"], objs["y"], APER_RADIUS_PIX, err=err)
    kr, _ = sep.kron_radius(sub, objs["x"], objs["y"], objs["a"], objs["b"], objs["theta"], 6.0)
    sep.sum_ellipse(
        sub, objs["x"], objs["y"], objs["a"], objs["b"], objs["theta"], 2.5 * kr, err=err, subpix=1
    )
    return np.asarray(objs["x"]), np.asarray(objs["y"]), np.asarray(flux, dtype=float)


METHODS = {
    "platform_lib": run_platform,
    "platform_lib_pure": lambda sim: run_platform(sim, pure=True),
    "photutils_recipe": run_photutils,
    "sep": run_sep,
}


def _ee_at_aperture(psf: np.ndarray) -> float:
    from photutils.aperture import CircularAperture, aperture_photometry

    c = (psf.shape[1] - 1) / 2, (psf.shape[0] - 1) / 2
    s = aperture_photometry(psf, CircularAperture(c, r=APER_RADIUS_PIX))["aperture_sum"][0]
    return float(s / psf.sum())


def score(sim, x, y, flux) -> dict:
    """Completeness per true magnitude, purity per measured magnitude."""
    from scipy.spatial import cKDTree

    tx, ty, mag = sim["x"], sim["y"], sim["mag"]
    out: dict = {"n": int(len(x))}
    if len(x) == 0:
        return out | {"purity": float("nan"), "completeness": {}, "purity_by_mag": {}}
    d, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([tx, ty]))
    found = d < MATCH_PIX
    dd, _ = cKDTree(np.column_stack([tx, ty])).query(np.column_stack([x, y]))
    real = dd < MATCH_PIX
    ee = _ee_at_aperture(sim["psf"])
    with np.errstate(invalid="ignore", divide="ignore"):
        mmag = 23.9 - 2.5 * np.log10(flux / ee)
    comp, pur = {}, {}
    for lo, hi in MAG_BINS:
        key = f"{lo:g}-{hi:g}"
        t = (mag >= lo) & (mag < hi)
        comp[key] = float(found[t].mean()) if t.any() else None
        m = (mmag >= lo) & (mmag < hi)
        pur[key] = [float(real[m].mean()) if m.any() else None, int(m.sum())]
    faint = ~(mmag < MAG_BINS[-1][1])  # fainter than the last bin, or flux <= 0
    pur[f">{MAG_BINS[-1][1]:g}"] = [
        float(real[faint].mean()) if faint.any() else None,
        int(faint.sum()),
    ]
    # magnitude of 50% completeness: the first bin (bright to faint) that drops below one half
    m50 = next((k for k, v in comp.items() if v is not None and v < 0.5), None)
    return out | {
        "purity": float(real.mean()),
        "completeness": comp,
        "purity_by_mag": pur,
        "first_bin_below_50pct": m50,
    }


def one(method: str, size: int, seed: int, inverted: bool) -> dict:
    sim = field(size, seed)
    if inverted:
        sim = dict(sim, data=-sim["data"])
    import photutils.segmentation  # noqa: F401  (imports are not the method's time)
    import sep  # noqa: F401

    import platform_lib.catalogs  # noqa: F401

    base_rss = _rss_mb()
    t0 = time.perf_counter()
    x, y, flux = METHODS[method](sim)
    wall = time.perf_counter() - t0
    peak = _peak_mb() - base_rss
    r = {"method": method, "wall_s": wall, "peak_extra_mb": peak, "n": int(len(x))}
    if not inverted:
        r |= score(sim, x, y, flux)
    return r


def _child(method: str, args, inverted: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--method", method, "--size", str(args.size)]
    cmd += ["--seed", str(args.seed)] + (["--inverted"] if inverted else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", choices=sorted(METHODS), help="run one method, print JSON")
    ap.add_argument("--inverted", action="store_true", help="with --method: on -data")
    ap.add_argument("--size", type=int, default=2048, help="field side in pixels (4088: detector)")
    ap.add_argument("--seed", type=int, default=22)
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds (median quoted)")
    ap.add_argument("--json", type=Path, help="where to write the figures")
    args = ap.parse_args()
    if args.size < 256:
        ap.error("--size must be at least 256 pixels")
    if args.method:
        print(json.dumps(one(args.method, args.size, args.seed, args.inverted)))
        return 0
    t0 = time.perf_counter()
    sim = field(args.size, args.seed)
    n_st, n_gal = int(sim["is_star"].sum()), int((~sim["is_star"]).sum())
    print(
        f"field {args.size}² px: {n_st} stars + {n_gal} galaxies, seed {args.seed}, "
        f"{cache_path(args.size, args.seed)} ({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    load0 = os.getloadavg()
    runs: dict[str, list[dict]] = {m: [] for m in ORDER}
    for k in range(args.rounds):
        for m in ORDER:
            runs[m].append(_child(m, args))
            print(f"  round {k + 1} {m}: {runs[m][-1]['wall_s']:.1f} s", flush=True)
    pure = _child("platform_lib_pure", args)
    inverted = {m: _child(m, args, inverted=True)["n"] for m in ORDER + ("platform_lib_pure",)}
    load1 = os.getloadavg()
    rows = {}
    for m in ORDER:
        walls = [r["wall_s"] for r in runs[m]]
        ratios = [r["wall_s"] / b["wall_s"] for r, b in zip(runs[m], runs["photutils_recipe"])]
        last = runs[m][-1]
        rows[m] = last | {
            "wall_s": float(np.median(walls)),
            "wall_s_all": walls,
            "wall_ratio_median": float(np.median(ratios)),
            "wall_ratio_all": ratios,
            "peak_extra_mb": float(np.median([r["peak_extra_mb"] for r in runs[m]])),
            "n_inverted": inverted[m],
        }
    rows["platform_lib_pure"] = pure | {
        "wall_ratio_median": float("nan"),
        "n_inverted": inverted["platform_lib_pure"],
    }
    base = rows["photutils_recipe"]
    bins = list(base["completeness"])
    print(
        f"\n{'method':<19}{'wall s':>8}{'x recipe':>9}{'peak MB':>9}{'x recipe':>9}{'n':>7}"
        f"{'purity':>8}{'n_inv':>7}{'1-inv/n':>8}"
    )
    for m, r in rows.items():
        print(
            f"{m:<19}{r['wall_s']:>8.1f}{r['wall_ratio_median']:>9.2f}{r['peak_extra_mb']:>9.0f}"
            f"{r['peak_extra_mb'] / base['peak_extra_mb']:>9.2f}{r['n']:>7}{r['purity']:>8.3f}"
            f"{r['n_inverted']:>7}{1 - r['n_inverted'] / max(r['n'], 1):>8.3f}"
        )
    print("\ncompleteness by true magnitude")
    print(f"{'method':<19}" + "".join(f"{b:>10}" for b in bins))
    for m, r in rows.items():
        print(f"{m:<19}" + "".join(f"{_f(r['completeness'][b]):>10}" for b in bins))
    pbins = list(base["purity_by_mag"])
    print('\npurity by measured magnitude (0.4" aperture / EE): purity (detections)')
    print(f"{'method':<19}" + "".join(f"{b:>12}" for b in pbins))
    for m, r in rows.items():
        print(
            f"{m:<19}"
            + "".join(
                f"{_f(r['purity_by_mag'][b][0]) + ' (' + str(r['purity_by_mag'][b][1]) + ')':>12}"
                for b in pbins
            )
        )
    print(
        f"\nwall: median of {args.rounds} rounds, ratio taken within each round; peak: ru_maxrss "
        "minus RSS after reading the image. baseline: photutils' documented recipe. load "
        f"average {load0[0]:.1f} at start, {load1[0]:.1f} at end"
    )
    report = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": f"{platform.node()} {os.cpu_count()} cores {platform.processor()}",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "size": args.size,
        "n_stars": n_st,
        "n_galaxies": n_gal,
        "seed": args.seed,
        "rounds": args.rounds,
        "load_average": [load0[0], load1[0]],
        "methods": rows,
    }
    path = args.json or CACHE_DIR / f"bench_static_{args.size}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    print(f"figures: {path}")
    return 0


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


if __name__ == "__main__":
    sys.exit(main())
