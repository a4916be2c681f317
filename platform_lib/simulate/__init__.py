"""Simulation on romanisim and galsim: scenes, L1/L2/L3 images with truth, survey mode, injection.

Public API (see docs/simulation.md)::

    from platform_lib import simulate as sim
    cat = sim.galaxy_field((270, 66), 0.1, n=500)                 # scenes -> astropy Table
    spec = sim.ExposureSpec(optical_element="F158", detector="WFI02", level=1,
                            footprint=sim.Footprint.cutout(256))
    img = sim.simulate_exposure(cat, spec, sim.InstrumentEffects())  # model + truth Table
    sim.write_product(img, "s3://bucket/sims", spec.filename)
    manifest = sim.run_survey(cat, sim.plan_survey((270, 66), epochs=3), "s3://bucket/survey")
"""

from __future__ import annotations

from .apportion import apportion_counts_to_resultants
from .bands import DETECTORS, IMAGING_ELEMENTS, bandpass, throughput_table, zeropoint_rate
from .cutout import Footprint
from .effects import InstrumentEffects, make_l1, read_pattern
from .errors import SimulationInputError
from .images import ExposureSpec, simulate_exposure, sky_position
from .inject import inject, inject_file
from .lightcurves import add_variability, catalog_at, flux_factor
from .matching import match_catalogs
from .mosaic import MosaicSpec, simulate_mosaic
from .output import write_product
from .product import SimulatedImage
from .reference import use_reference_data
from .scenes import combine, galaxy_field, sources, star_field, validate_catalog
from .survey import Pointing, plan_survey, run_survey

__all__ = [
    "DETECTORS",
    "IMAGING_ELEMENTS",
    "ExposureSpec",
    "Footprint",
    "InstrumentEffects",
    "MosaicSpec",
    "Pointing",
    "SimulatedImage",
    "SimulationInputError",
    "add_variability",
    "apportion_counts_to_resultants",
    "bandpass",
    "catalog_at",
    "combine",
    "flux_factor",
    "galaxy_field",
    "inject",
    "inject_file",
    "make_l1",
    "match_catalogs",
    "plan_survey",
    "read_pattern",
    "run_survey",
    "simulate_exposure",
    "simulate_mosaic",
    "sky_position",
    "sources",
    "star_field",
    "throughput_table",
    "use_reference_data",
    "validate_catalog",
    "write_product",
    "zeropoint_rate",
]
