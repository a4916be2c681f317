"""End-to-end smoke task for the notebook image: simulate small Roman WFI images, catalog them.

Runs inside the image with nothing from outside: galsim's Roman module (PSF, bandpasses, pixel
scale) renders a known scene of stars and galaxies on a few small cutouts, on a Dask cluster from
``platform_lib.compute.get_client`` (a LocalCluster here, Dask-Gateway on the platform);
photutils detects and measures the sources; the images go to roman_datamodels ``ImageModel``
ASDF files and the catalogs to Parquet, and both are read back. The run fails (non-zero exit,
message on stderr) unless the catalog recovers the injected scene: that is what makes it a test
of the installed stack rather than of the imports.

Usage: python simulate_and_catalog.py OUTDIR [--cutouts N] [--size PIXELS] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

BAND = "H158"
SKY_E = 80.0  # sky per pixel (electrons), about a 100 s exposure
READ_NOISE_E = 8.0
APERTURE_PX = 6.0  # aperture radius for star photometry (0.66 arcsec)


def truth_scene(size: int, seed: int, n_stars: int = 10, n_galaxies: int = 6) -> dict:
    """A scene well inside the cutout, sources apart enough that a catalog must resolve them."""
    rng = np.random.default_rng(seed)
    n = n_stars + n_galaxies
    margin, min_sep = 20, 14.0
    xs: list[float] = []
    ys: list[float] = []
    for _ in range(10_000):  # bounded: rejection sampling for non-overlapping positions
        if len(xs) == n:
            break
        x, y = rng.uniform(margin, size - margin, 2)
        if all((x - a) ** 2 + (y - b) ** 2 > min_sep**2 for a, b in zip(xs, ys)):
            xs.append(float(x))
            ys.append(float(y))
    if len(xs) < n:
        raise RuntimeError("could not place the scene's sources; use a larger --size")
    flux = rng.uniform(4_000, 40_000, n)
    kind = ["star"] * n_stars + ["galaxy"] * n_galaxies
    hlr = [0.0] * n_stars + list(rng.uniform(0.15, 0.35, n_galaxies))
    return {"x": xs, "y": ys, "flux": flux.tolist(), "kind": kind, "hlr_arcsec": hlr}


def simulate(task: dict) -> dict:
    """Render one cutout (electrons) with the Roman PSF of detector ``sca``; runs on a worker."""
    import galsim
    import galsim.roman as roman

    size, sca, seed, scene = task["size"], task["sca"], task["seed"], task["scene"]
    bandpass = roman.getBandpasses(AB_zeropoint=True)[BAND]
    # Monochromatic at the band's effective wavelength, coarse pupil: seconds, not minutes.
    psf = roman.getPSF(sca, BAND, pupil_bin=8, wavelength=bandpass.effective_wavelength)
    image = galsim.ImageF(size, size, scale=roman.pixel_scale)
    for x, y, flux, kind, hlr in zip(
        scene["x"], scene["y"], scene["flux"], scene["kind"], scene["hlr_arcsec"]
    ):
        src = (
            galsim.DeltaFunction(flux=flux)
            if kind == "star"
            else galsim.Exponential(half_light_radius=hlr, flux=flux)
        )
        # galsim pixel centres are at integer positions counting from 1; numpy's from 0.
        stamp = galsim.Convolve(src, psf).drawImage(
            scale=roman.pixel_scale, center=galsim.PositionD(x + 1, y + 1), nx=64, ny=64
        )
        bounds = stamp.bounds & image.bounds
        image[bounds] += stamp[bounds]
    # The PSF's encircled energy in the photometry aperture: what a perfect measurement recovers.
    unit = psf.drawImage(scale=roman.pixel_scale, nx=64, ny=64).array
    yy, xx = np.indices(unit.shape)
    c = (unit.shape[0] - 1) / 2
    encircled = float(unit[np.hypot(xx - c, yy - c) <= APERTURE_PX].sum() / unit.sum())
    image += SKY_E
    image.addNoise(galsim.CCDNoise(galsim.BaseDeviate(seed), gain=1.0, read_noise=READ_NOISE_E))
    return {"sca": sca, "data": image.array.copy(), "encircled": encircled}


def catalog(data: np.ndarray):
    """photutils: background, detection, deblending, segment photometry -> astropy QTable."""
    import photutils
    from astropy.convolution import convolve
    from photutils.aperture import CircularAperture, aperture_photometry
    from photutils.background import Background2D, MedianBackground
    from photutils.segmentation import (
        SourceCatalog,
        deblend_sources,
        detect_sources,
        make_2dgaussian_kernel,
    )

    photutils.future_column_names = True  # photutils 3 names (x_centroid, segment_flux_err)
    bkg = Background2D(data, (32, 32), filter_size=(3, 3), bkg_estimator=MedianBackground())
    sub = data - bkg.background
    smoothed = convolve(sub, make_2dgaussian_kernel(2.0, size=5))
    segm = detect_sources(smoothed, 3.0 * bkg.background_rms, n_pixels=8)
    if segm is None:
        raise RuntimeError("no source detected")
    segm = deblend_sources(smoothed, segm, n_pixels=8, progress_bar=False)
    error = np.sqrt(bkg.background_rms**2 + np.clip(sub, 0, None))
    cat = SourceCatalog(sub, segm, convolved_data=smoothed, error=error)
    table = cat.to_table(
        columns=["label", "x_centroid", "y_centroid", "segment_flux", "segment_flux_err"]
    )
    # Aperture photometry at the detected centroids: the flux a star catalog reports.
    positions = np.column_stack([table["x_centroid"], table["y_centroid"]])
    phot = aperture_photometry(sub, CircularAperture(positions, r=APERTURE_PX), error=error)
    table["aper_flux"] = phot["aperture_sum"]
    table["aper_flux_err"] = phot["aperture_sum_err"]
    return table


def match(scene: dict, table, encircled: float, radius: float = 2.0) -> tuple[int, list[float]]:
    """Nearest detection within ``radius`` pixels of each truth source; for the stars, measured
    aperture flux over the injected flux in that aperture."""
    xc = np.asarray(table["x_centroid"], float)
    yc = np.asarray(table["y_centroid"], float)
    fl = np.asarray(table["aper_flux"], float)
    found, ratios = 0, []
    for x, y, flux, kind in zip(scene["x"], scene["y"], scene["flux"], scene["kind"]):
        d = np.hypot(xc - x, yc - y)
        i = int(np.argmin(d))
        if d[i] <= radius:
            found += 1
            if kind == "star":
                ratios.append(fl[i] / (flux * encircled))
    return found, ratios


def write_and_reread(outdir: Path, sca: int, data: np.ndarray, table) -> None:
    """The products in the field's formats, read back the way a user would."""
    import roman_datamodels.datamodels as rdd
    from astropy.table import Table

    model = rdd.ImageModel.create_fake_data(shape=data.shape)
    model.data = data.astype(np.float32)
    model.meta.instrument.optical_element = f"F{BAND[1:]}"
    model.meta.instrument.detector = f"WFI{sca:02d}"
    path = outdir / f"smoke_wfi{sca:02d}_cal.asdf"
    model.meta.filename = path.name
    model.save(path)
    with rdd.open(path) as back:
        if not np.array_equal(np.asarray(back.data), model.data):
            raise RuntimeError(f"{path.name}: data changed on the round trip")
        if back.meta.instrument.detector != f"WFI{sca:02d}":
            raise RuntimeError(f"{path.name}: detector changed on the round trip")
    cat_path = outdir / f"smoke_wfi{sca:02d}_cat.parquet"
    Table(table).write(cat_path, overwrite=True)
    if len(Table.read(cat_path, format="parquet")) != len(table):
        raise RuntimeError(f"{cat_path.name}: rows lost on the round trip")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--cutouts", type=int, default=2, help="cutouts, one per detector (1-18)")
    parser.add_argument("--size", type=int, default=256, help="cutout side in pixels")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if not 1 <= args.cutouts <= 18:
        parser.error("--cutouts must be between 1 and 18")
    if not 128 <= args.size <= 2048:
        parser.error("--size must be between 128 and 2048 pixels")
    args.outdir.mkdir(parents=True, exist_ok=True)

    from platform_lib.compute import get_client, map_with_progress

    t0 = time.monotonic()
    scene = truth_scene(args.size, args.seed)
    tasks = [
        {"size": args.size, "sca": sca, "seed": args.seed + sca, "scene": scene}
        for sca in range(1, args.cutouts + 1)
    ]
    with get_client(n_workers=min(2, args.cutouts)) as client:
        images = map_with_progress(client, simulate, tasks, desc="simulate")
    failures = [r for r in images if isinstance(r, BaseException)]
    if failures:
        raise failures[0]

    report = {"cutouts": []}
    ok = True
    for img in images:
        table = catalog(img["data"])
        found, ratios = match(scene, table, img["encircled"])
        median_ratio = float(np.median(ratios)) if ratios else 0.0
        write_and_reread(args.outdir, img["sca"], img["data"], table)
        good = found >= 0.9 * len(scene["x"]) and abs(median_ratio - 1.0) <= 0.05
        ok &= good
        report["cutouts"].append(
            {
                "sca": img["sca"],
                "detected": len(table),
                "matched": found,
                "injected": len(scene["x"]),
                "encircled_energy": round(img["encircled"], 4),
                "star_flux_ratio_median": round(median_ratio, 4),
                "ok": good,
            }
        )
    report["seconds"] = round(time.monotonic() - t0, 1)
    report["ok"] = ok
    print(json.dumps(report))
    if not ok:
        print("smoke: the catalog does not recover the simulated scene", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
