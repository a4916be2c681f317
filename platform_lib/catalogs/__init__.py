"""Static and variability catalogs (the seed's L4 tabular products), on photutils and astropy.

Public API:
- :class:`CatalogImage`, :func:`from_model` — the input image (L2/L3 model or arrays + WCS)
- :func:`single_band`, :func:`multi_band` — static catalogs (astropy QTable + segmentation)
- :func:`photometric_redshifts` — Roman-only template-fitting photo-z
- :func:`align_to_reference` — tie positions to a Gaia-like catalog
- :func:`write_products` — L4 files into the data store, atomically
- :mod:`.variability` — forced photometry light curves and variability indices
- :mod:`.diffim` — difference imaging and its L4 transient catalog
"""

from .astrometry import AlignmentResult, align_to_reference, read_reference
from .detection import DetectionConfig
from .errors import CatalogInputError
from .images import CatalogImage, from_model
from .outputs import read_segmentation, write_products
from .photoz import PhotozConfig, photometric_redshifts, roman_bands
from .static import StaticCatalog, multi_band, single_band

__all__ = [
    "AlignmentResult",
    "CatalogImage",
    "CatalogInputError",
    "DetectionConfig",
    "PhotozConfig",
    "StaticCatalog",
    "align_to_reference",
    "from_model",
    "multi_band",
    "photometric_redshifts",
    "read_reference",
    "read_segmentation",
    "roman_bands",
    "single_band",
    "write_products",
]
