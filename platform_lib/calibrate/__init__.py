"""Calibration on romancal/stcal: reference-file sets, L1 -> L2 -> L3, survey-scale reruns.

Public API::

    from platform_lib.calibrate import (
        make_reference_set, open_reference_set, reference_data_mapping,   # reference files
        calibrate_exposure, build_mosaic, calibrate_many,                 # pipelines
        parse_config,                                                     # step settings
    )

Heavy modules (romancal, romanisim) load on first use, so importing this package is cheap.
"""

from __future__ import annotations

from platform_lib._lazy import lazy_getattr

_EXPORTS = {
    "RefSetSpec": "reference_files",
    "make_reference_set": "reference_files",
    "stage_reference_set": "reference_files",
    "open_reference_set": "references",  # defined in platform_lib.data.refset
    "reference_data_mapping": "reference_files",
    "ReferenceSetError": "references",  # defined in platform_lib.data.refset
    "calibrate_exposure": "exposure",
    "ExposureResult": "exposure",
    "InputError": "exposure",
    "build_mosaic": "mosaic",
    "calibrate_many": "scale",
    "exposures_from_index": "scale",
    "parse_config": "config",
    "ConfigError": "config",
    "NoReferenceSource": "references",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
