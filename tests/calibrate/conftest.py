"""Shared, session-scoped simulated data for the calibration tests.

One small reference-file set (256² science pixels, F158), one star field, three dithered
exposures simulated with romanisim from that set (cosmic rays, a 0.39" commanded-pointing
error), calibrated once through the Dask batch runner, and one mosaic of them. Every test reads
these; the whole area stays within its CI budget.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SIZE = 256
FILTER = "F158"
RA0, DEC0 = 270.0, 66.0
DITHERS = [(0.0, 0.0), (8.0, 3.0), (-5.0, 9.0)]  # arcsec east, north
POINTING_ERROR = (0.3, -0.25)  # arcsec: commanded minus true
GAIA_SIGMA_MAS = 0.5  # per-axis error of the "Gaia-like" catalog positions


@dataclass
class Field:
    refs: Path
    stars: Any
    refcat: Path
    sims: list[Any]
    out: Path
    batch: Any
    rerun: Any
    mosaic: Any
    bad_l1: Path


@pytest.fixture(scope="session")
def refset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from platform_lib.calibrate.reference_files import make_reference_set

    d = tmp_path_factory.mktemp("refs")
    make_reference_set(d, size=SIZE, optical_elements=(FILTER,))
    return d


@pytest.fixture(scope="session")
def field(tmp_path_factory: pytest.TempPathFactory, refset_dir: Path) -> Field:
    from astropy.table import Table

    from platform_lib.calibrate.mosaic import build_mosaic
    from platform_lib.calibrate.reference_files import open_reference_set
    from platform_lib.calibrate.scale import calibrate_many
    from platform_lib.calibrate.synthetic import simulate_l1, star_table
    from platform_lib.compute import get_client

    base = tmp_path_factory.mktemp("field")
    refs = open_reference_set(refset_dir)
    from astropy.table import vstack

    # a wide magnitude range (saturated cores to faint), plus moderate stars for photometry
    cosd = np.cos(np.radians(DEC0))
    stars = vstack(
        [
            star_table(RA0, DEC0, 0.012, 150, (14.5, 23.0), FILTER, seed=11),
            # moderate stars where all three dithers overlap, for photometry
            star_table(
                RA0 + 1.0 / 3600 / cosd,
                DEC0 + 4.0 / 3600,
                0.0022,
                15,
                (17.5, 20.0),
                FILTER,
                seed=12,
            ),
        ]
    )
    rng = np.random.default_rng(2)
    sig = GAIA_SIGMA_MAS / 3.6e6
    refcat = Table(
        {
            "ra": stars["ra"] + rng.normal(0, sig, len(stars)) / cosd,
            "dec": stars["dec"] + rng.normal(0, sig, len(stars)),
        }
    )
    refcat_path = base / "gaia_like.ecsv"
    refcat.write(refcat_path)

    sims = []
    for i, (dx, dy) in enumerate(DITHERS):
        sims.append(
            simulate_l1(
                refs,
                base / "L1" / f"r0001_{i:02d}_wfi01_uncal.asdf",
                ra=RA0 + dx / 3600 / cosd,
                dec=DEC0 + dy / 3600,
                stars=stars,
                optical_element=FILTER,
                cosmic_rays={},
                seed=100 + i,
                pointing_error_arcsec=POINTING_ERROR,
            )
        )
    # a damaged file in the batch: it must fail alone
    bad = base / "L1" / "r0001_99_wfi01_uncal.asdf"
    data = sims[0].l1_path.read_bytes()
    bad.write_bytes(data[: len(data) // 2])

    out = base / "L2"
    # the pointing error is a shift (plus, in flight, a small roll): fit shift and rotation
    config = {"steps": {"tweakreg": {"abs_minobj": 5, "abs_fitgeometry": "rshift"}}}
    inputs = [s.l1_path for s in sims] + [bad]
    # no ROMAN_DATA_URL here: the index hook is exercised by the S3 test
    saved = os.environ.pop("ROMAN_DATA_URL", None)
    try:
        with get_client(2, memory_limit="3GiB") as client:
            batch = calibrate_many(
                inputs, out, refs=refset_dir, config=config, abs_refcat=refcat_path, client=client
            )
            rerun = calibrate_many(
                inputs, out, refs=refset_dir, config=config, abs_refcat=refcat_path, client=client
            )
    finally:
        if saved is not None:
            os.environ["ROMAN_DATA_URL"] = saved
    done = sorted(r.output for r in batch.results if r.status == "done")
    mosaic = build_mosaic(done, base / "L3" / "r0001_f158_coadd.asdf", refs=refset_dir)
    return Field(
        refs=refset_dir,
        stars=stars,
        refcat=refcat_path,
        sims=sims,
        out=out,
        batch=batch,
        rerun=rerun,
        mosaic=mosaic,
        bad_l1=bad,
    )


@pytest.fixture(scope="session")
def l2_models(field: Field) -> list[Any]:
    import roman_datamodels.datamodels as rdm

    from platform_lib.calibrate.exposure import output_name

    return [rdm.open(field.out / output_name(s.l1_path.name)) for s in field.sims]
