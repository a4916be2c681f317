"""Catalogs of products in the data store, one Dask task per field (or per image).

This is the notebook- and CLI-facing layer: it takes product rows from
``platform_lib.data.search`` (or store paths/URLs), opens them as roman_datamodels models, gets
each image's PSF from the platform's PSF library, runs the static, variability or
difference-imaging catalog, and writes the L4 products next to the data. Pixels are read on the
workers: a task receives product references, never arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from astropy.table import Table

from ..instrument import CENTRE_PIXEL, DETECTOR_CENTRE
from .errors import CatalogInputError
from .images import CatalogImage, from_model

PSF_STAMP = 63  # native pixels (6.9"): holds Roman's core and first rings


def library_psf_image(
    detector: str, optical_element: str, *, store: Any = None, size: int = PSF_STAMP
) -> np.ndarray:
    """A native-pixel PSF image from the PSF library, at the detector centre, normalised.

    L3 mosaics mix detectors; their PSF is taken from WFI01's centre unless the caller passes
    one, a documented approximation (the Roman PSF varies by a few percent in width over the
    focal plane; docs/catalogs.md).
    """
    from platform_lib.data.psf import psf as library_psf

    model = library_psf(detector, optical_element, DETECTOR_CENTRE, DETECTOR_CENTRE, store=store)
    half = size // 2
    x0 = y0 = float(CENTRE_PIXEL)  # an integer pixel: the stamp is centred on its middle pixel
    model.x_0, model.y_0 = x0, y0
    yy, xx = np.mgrid[y0 - half : y0 + half + 1, x0 - half : x0 + half + 1]
    img = np.asarray(model(xx, yy), dtype=float)
    img = np.clip(img, 0, None)
    return img / img.sum()


def library_psf_fraction(detector: str, optical_element: str, *, store: Any = None) -> float:
    """Share of the PSF's total light inside the library's stamps (they are normalised to
    their own sum), for total fluxes: from the galsim model the library was drawn from."""
    from platform_lib.data.psf import load_epsf

    from .apcorr import psf_light_fraction

    model = load_epsf(detector, optical_element, store)
    over = int(np.atleast_1d(model.oversampling)[0])
    n = int(round(model.data.shape[-1] / over))
    return psf_light_fraction(optical_element, n, sca=int(detector.upper().removeprefix("WFI")))


def load_image(product: Any, *, store: Any = None, psf: np.ndarray | None = None) -> CatalogImage:
    """A ``CatalogImage`` of an L2/L3 product in the store, with its library PSF."""
    from platform_lib.data import open_product

    fraction = 1.0
    with open_product(product, store) as model:
        if psf is None:
            element = str(model.meta.instrument.optical_element)
            detector = str(getattr(model.meta.instrument, "detector", "") or "WFI01")
            psf = library_psf_image(detector, element, store=store)
            fraction = library_psf_fraction(detector, element, store=store)
        img = from_model(model, psf=psf, name=_name_of(product))
    img.psf_total_fraction = fraction
    return img


def _name_of(product: Any) -> str:
    if hasattr(product, "colnames") and "path" in product.colnames:
        return str(product["path"])
    return str(product)


def _run(task: Any, items: list, client: Any, desc: str) -> dict[str, Any]:
    """Run ``task`` per (name, products) item: {name: result or the exception}.

    The light path: one field and no client given runs here, in this process, with no Dask
    cluster (starting one costs seconds and a second copy of the pixels for a single task).
    Several fields, or an explicit client, go to Dask as before.
    """
    if client is None and len(items) == 1:
        try:
            results = [task(items[0])]
        except Exception as exc:  # the same contract as the Dask path: the error in place
            results = [exc]
    else:
        from platform_lib.compute import get_client, map_with_progress

        if client is None:
            with get_client() as c:
                results = map_with_progress(c, task, items, desc=desc)
        else:
            results = map_with_progress(client, task, items, desc=desc)
    return {name: r for (name, _), r in zip(items, results)}


def catalog_fields(
    fields: dict[str, Sequence[Any]],
    out_prefix: str,
    *,
    store: Any = None,
    reference: Table | None = None,
    client: Any = None,
    storage_options: dict | None = None,
) -> dict[str, dict[str, str] | BaseException]:
    """Multi-band static catalogs, one Dask task per field: {field: written URLs or the error}.

    ``fields`` maps a field name to its products (one per optical element, on one pixel grid).
    One field with no ``client`` runs in this process (no cluster).
    """
    from .outputs import write_products
    from .static import multi_band, single_band

    def task(item: tuple[str, Sequence[Any]]) -> dict[str, str]:
        name, products = item
        images = [load_image(p, store=store) for p in products]
        cat = (
            multi_band(images, reference=reference)
            if len(images) > 1
            else single_band(images[0], reference=reference)
        )
        cat.table.meta["inputs"] = [_name_of(p) for p in products]
        return write_products(
            out_prefix,
            name,
            catalog=cat.table,
            segmentation=cat.segmentation,
            wcs=cat.wcs,
            storage_options=storage_options,
        )

    items = list(fields.items())
    if not items:
        raise CatalogInputError("no fields given")
    return _run(task, items, client, "static catalogs")


def difference_fields(
    fields: dict[str, Sequence[Any]],
    out_prefix: str,
    *,
    store: Any = None,
    threshold: float = 5.0,
    client: Any = None,
    storage_options: dict | None = None,
) -> dict[str, dict[str, str] | BaseException]:
    """Difference-imaging L4 catalogs, one Dask task per field of overlapping rectified images."""
    from .diffim import difference_catalog
    from .outputs import write_products

    def task(item: tuple[str, Sequence[Any]]) -> dict[str, str]:
        name, products = item
        images = [load_image(p, store=store) for p in products]
        cat = difference_catalog(images, threshold=threshold)
        cat.meta["inputs"] = [_name_of(p) for p in products]
        return write_products(
            out_prefix, f"{name}_diff", catalog=cat, storage_options=storage_options
        )

    items = list(fields.items())
    if not items:
        raise CatalogInputError("no fields given")
    return _run(task, items, client, "difference imaging")
