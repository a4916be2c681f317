"""End-to-end platform_lib task inside the notebook image: simulate a small L2 image, catalog it.

What an astronomer's first notebook does, through the project's own library only:
``platform_lib.simulate`` makes a star field and a romanisim L2 cutout of it (with truth),
``platform_lib.catalogs`` detects and measures it, both write their products to a data-store URL
(a local folder here, S3 on the platform), and the catalog is matched back to the truth. Exits 1
unless the catalog recovers the stars at the fluxes that were put in (in physical units).

Usage: python platform_task.py OUTURL [--size PIXELS] [--stars N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="data-store URL or folder for the products")
    parser.add_argument("--size", type=int, default=256, help="cutout side in pixels (64-1024)")
    parser.add_argument("--stars", type=int, default=20, help="stars in the scene (1-200)")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    if not 64 <= args.size <= 1024:
        parser.error("--size must be between 64 and 1024 pixels")
    if not 1 <= args.stars <= 200:
        parser.error("--stars must be between 1 and 200")
    logging.getLogger("romanisim").setLevel(logging.WARNING)

    import astropy.units as u
    from astropy.table import Table

    from platform_lib import catalogs
    from platform_lib import simulate as sim

    t0 = time.monotonic()
    spec = sim.ExposureSpec(
        optical_element="F158",
        detector="WFI02",
        level=2,
        footprint=sim.Footprint.cutout(args.size),
        seed=args.seed,
        name="smoke",
    )
    ra, dec = sim.sky_position(spec, args.size / 2, args.size / 2)
    # Within the cutout: its half-side less a margin, in degrees (0.11 arcsec pixels).
    radius = (args.size / 2 - 12) * 0.11 / 3600
    stars = sim.star_field(
        (ra, dec), radius, n=args.stars, mag_range=(19.0, 23.0), elements=["F158"], seed=args.seed
    )
    image = sim.simulate_exposure(stars, spec)
    written = sim.write_product(image, args.out, spec.filename)
    t_sim = time.monotonic() - t0

    cat = catalogs.single_band(catalogs.from_model(image.model))
    products = catalogs.write_products(
        args.out, "smoke_wfi02_f158", catalog=cat.table, segmentation=cat.segmentation, wcs=cat.wcs
    )
    truth = image.truth[np.asarray(image.truth["in_footprint"], bool)]
    matched = sim.match_catalogs(truth, cat.table, radius=0.2)
    found = np.asarray(matched["recovered"], bool)
    # Kron flux over the flux put in (the scene's AB magnitudes), compared in physical units: the
    # catalog must calibrate the L2 image, and a Kron aperture misses 10-20 % of a Roman PSF.
    magnitude = dict(zip(np.asarray(stars["source_id"]), np.asarray(stars["mag_F158"], float)))
    injected = u.Magnitude(
        [magnitude[i] for i in np.asarray(matched["in_source_id"][found])], u.ABmag
    ).to(u.uJy)
    unit = u.Unit(cat.table["kron_flux"].unit or "")  # the match table keeps values only
    if not unit.is_equivalent(u.uJy):
        print(f"platform task: catalog fluxes are in '{unit}', not a flux density", file=sys.stderr)
        return 1
    measured = np.asarray(matched["out_kron_flux"][found], float) * unit
    ratio = (measured / injected).to_value(u.dimensionless_unscaled)
    median, spread = (float(np.median(ratio)), float(np.std(ratio))) if found.any() else (0.0, 0.0)
    back = Table.read(products["smoke_wfi02_f158_cat.parquet"], format="parquet")
    ok = bool(
        len(truth) >= 0.9 * args.stars
        and found.sum() >= 0.9 * len(truth)
        and 0.75 <= median <= 1.0
        and spread <= 0.1
        and len(back) == len(cat.table)
    )
    report = {
        "stars": len(truth),
        "detected": len(cat.table),
        "recovered": int(found.sum()),
        "kron_over_truth_median": round(median, 4),
        "kron_over_truth_std": round(spread, 4),
        "image": written["image"],
        "truth": written["truth"],
        "catalog_rows_read_back": len(back),
        "products": sorted(products),
        "simulate_seconds": round(t_sim, 1),
        "seconds": round(time.monotonic() - t0, 1),
        "ok": ok,
    }
    print(json.dumps(report, default=str))
    if not ok:
        print("platform task: the catalog does not recover the simulated stars", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
