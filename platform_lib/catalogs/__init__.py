"""Static and variability catalogs (the seed's L4 tabular products), on photutils and astropy.

Public API:
- :class:`CatalogImage`, :func:`from_model` — the input image (L2/L3 model or arrays + WCS)
- :func:`single_band`, :func:`multi_band` — static catalogs (astropy QTable + segmentation)
- :func:`photometric_redshifts` — Roman-only template-fitting photo-z
- :func:`align_to_reference` — tie positions to a Gaia-like catalog
- :func:`write_products` — L4 files into the data store, atomically
- :mod:`.variability` — forced photometry light curves and variability indices
- :mod:`.diffim` — difference imaging and its L4 transient catalog
- :mod:`.field` — the same on products in the data store, one Dask task per field

Names load on first use (photutils and scipy take seconds to import), so ``roman-platform``'s
start-up, which imports this package's CLI, does not pay for them.
"""

from __future__ import annotations

from platform_lib._lazy import lazy_getattr

_EXPORTS = {
    "AlignmentResult": "astrometry",
    "align_to_reference": "astrometry",
    "read_reference": "astrometry",
    "DetectionConfig": "detection",
    "CatalogInputError": "errors",
    "CatalogImage": "images",
    "from_model": "images",
    "read_segmentation": "outputs",
    "write_products": "outputs",
    "PhotozConfig": "photoz",
    "photometric_redshifts": "photoz",
    "roman_bands": "photoz",
    "StaticCatalog": "static",
    "multi_band": "static",
    "single_band": "static",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
