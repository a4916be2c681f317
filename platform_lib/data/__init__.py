"""Roman data access: the store, the product index and sky search, reading, the PSF library.

Typical notebook use (the platform sets the store in the environment)::

    from astropy.coordinates import SkyCoord
    import astropy.units as u
    from platform_lib import data

    rows = data.search((SkyCoord(269.84, 65.96, unit="deg"), 30 * u.arcsec), level="L2")
    with data.open(rows[0]) as model:
        print(model.meta.instrument.optical_element, model.data.shape)
    psf = data.psf("WFI01", "F158", 2000, 2000)   # a photutils GriddedPSFModel
"""

from __future__ import annotations

from .access import Cutout, cutout, download, open_product
from .index import build_index, load_index
from .psf import psf  # the function; photutils is imported when it is called
from .search import search
from .store import DataStoreError, Store, get_store
from .user_store import user_store_url

open = open_product


__all__ = [
    "Cutout",
    "DataStoreError",
    "Store",
    "build_index",
    "cutout",
    "download",
    "get_store",
    "load_index",
    "open",
    "open_product",
    "psf",
    "search",
    "user_store_url",
]
