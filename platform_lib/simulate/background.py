"""The sky a Roman exposure sees: zodiacal light and stray light, plus the telescope's thermal glow.

One recipe for every simulator that renders a detector (:func:`.simulate_exposure` and the
calibration validation exposures of :mod:`platform_lib.calibrate.synthetic`), as romanisim
builds it: romanisim's sky level for the band at one position and date, raised by its stray
light fraction, spread over the pixels by their solid angle (the WCS's pixel areas), and the
band's thermal background added per pixel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .bands import bandpass

__all__ = ["sky_background"]


def sky_background(
    imwcs: Any,
    image: Any,
    element: str,
    date: Any,
    at: tuple[float, float],
    *,
    thermal: bool = True,
) -> tuple[Any, np.ndarray]:
    """(sky image, pixel area relative to the reference pixel) on ``image``'s pixels.

    ``imwcs``: the exposure's galsim WCS; ``image``: a galsim Image whose bounds and WCS the
    sky takes; ``date``: an astropy Time; ``at``: the detector pixel (x, y) where the sky level
    is evaluated. The sky image is in electrons per second per pixel before QE; ``thermal``
    adds the band's thermal background.
    """
    import galsim
    from romanisim.models import backgrounds, parameters
    from romanisim.models import bandpass as rbp

    world = imwcs.toWorld(galsim.PositionD(*at))
    level = backgrounds.getSkyLevel(
        bandpass(element), world_pos=world, date=date.datetime, exptime=1
    )
    level *= 1.0 + parameters.stray_light_fraction
    sky = image * 0
    imwcs.makeSkyImage(sky, level)
    area = sky.array / level
    if thermal:
        sky += backgrounds.thermal_backgrounds[rbp.roman2galsim_bandpass[element]]
    return sky, area
