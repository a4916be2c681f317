"""The Roman Wide Field Instrument as every subpackage sees it: one home for its constants.

Detector geometry (science pixels, the reference-pixel border, the native pixel scale), the
detector names and the optical elements, with galsim.roman's name for each band. Simulation,
calibration, the sample survey, the PSF library and the catalogs all read them from here,
so a number such as 4088 is written once. Pure constants: importing this module imports
nothing else.
"""

from __future__ import annotations

__all__ = [
    "DETECTORS",
    "CENTRE_PIXEL",
    "DETECTOR_CENTRE",
    "FRAME_PIXELS",
    "GALSIM_BANDS",
    "IMAGING_ELEMENTS",
    "PIXEL_SCALE",
    "REFERENCE_BORDER",
    "SCIENCE_PIXELS",
    "SPECTRAL_ELEMENTS",
]

#: science (light-sensitive) pixels per detector side
SCIENCE_PIXELS = 4088
#: reference pixels on each side of a detector frame (around the science pixels)
REFERENCE_BORDER = 4
#: pixels per side of a full frame as read out: science pixels plus the border (4096)
FRAME_PIXELS = SCIENCE_PIXELS + 2 * REFERENCE_BORDER
#: the middle of a detector's science pixels (0-based pixel coordinates: 2043.5)
DETECTOR_CENTRE = (SCIENCE_PIXELS - 1) / 2
#: the integer science pixel next to the middle (2044)
CENTRE_PIXEL = SCIENCE_PIXELS // 2
#: native pixel scale, arcsec per pixel
PIXEL_SCALE = 0.11

#: the 18 WFI detectors
DETECTORS: tuple[str, ...] = tuple(f"WFI{i:02d}" for i in range(1, 19))
#: WFI imaging optical elements (romanisim / roman_datamodels names)
IMAGING_ELEMENTS: tuple[str, ...] = ("F062", "F087", "F106", "F129", "F158", "F184", "F213", "F146")
#: dispersive elements (throughputs are known; images of them are not simulated here)
SPECTRAL_ELEMENTS: tuple[str, ...] = ("GRISM", "PRISM")
#: galsim.roman's band name for each imaging element
GALSIM_BANDS: dict[str, str] = {
    "F062": "R062",
    "F087": "Z087",
    "F106": "Y106",
    "F129": "J129",
    "F158": "H158",
    "F184": "F184",
    "F213": "K213",
    "F146": "W146",
}
