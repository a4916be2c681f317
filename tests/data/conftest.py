"""Fixtures for the data-access tests: a small set of simulated products, staged twice.

The products are made once per session with ``platform_lib.sample.make_exposure`` (romanisim
pieces, 64-pixel cutouts): two detectors, two optical elements, three dithered epochs, L1 and L2.
They are staged into a local folder AND into a real S3 server (SeaweedFS, the shared
``s3_store`` fixture), and every store test runs against both.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

DETECTORS = ("WFI01", "WFI02")
OPTICAL_ELEMENTS = ("F158", "F087")
EPOCHS = 3
SIZE = 64
RA, DEC = 270.0, 66.0


@pytest.fixture(scope="session")
def product_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """relative store path → local source file, for 24 products (12 L1 + 12 L2)."""
    import astropy.units as u
    from astropy.time import Time

    from platform_lib.sample import make_exposure

    folder = tmp_path_factory.mktemp("products")
    t0 = Time("2027-03-01T00:00:00", scale="utc")
    out: dict[str, Path] = {}
    n = 0
    for epoch in range(EPOCHS):
        for k, oe in enumerate(OPTICAL_ELEMENTS):
            for det in DETECTORS:
                n += 1
                # dithers of ~3-4 arcsec on 7-arcsec cutouts: partial overlaps between epochs
                raw, l2 = make_exposure(
                    det,
                    oe,
                    RA + 0.0011 * epoch,
                    DEC + 0.0007 * epoch,
                    t0 + (epoch + k * 0.01) * u.day,
                    program=7,
                    visit=epoch + 1,
                    exposure=k + 1,
                    size=SIZE,
                    seed=n,
                )
                base = f"r00007{epoch + 1:03d}{k + 1:04d}_{det.lower()}_{oe.lower()}"
                for level, model, suffix in (("L1", raw, "uncal"), ("L2", l2, "cal")):
                    path = folder / f"{base}_{suffix}.asdf"
                    model.save(path)
                    out[f"survey/{level}/{path.name}"] = path
    return out


@pytest.fixture(scope="session")
def dask_client() -> Iterator[object]:
    """One small local Dask cluster for every indexing call of the session."""
    from platform_lib.compute import get_client

    with get_client(n_workers=1, reuse=False) as client:
        yield client


def _stage(store, files: dict[str, Path]) -> None:
    for rel, src in files.items():
        store.put_file(src, rel)


@pytest.fixture(scope="session", params=["local", "s3"])
def staged(request, product_files, tmp_path_factory):
    """(store, files): the products staged in a fresh local folder or S3 prefix."""
    from platform_lib.data.store import get_store

    if request.param == "local":
        folder = tmp_path_factory.mktemp("store")
        store = get_store(folder)
    else:
        s3 = request.getfixturevalue("s3_store")
        opts = s3.storage_options()
        store = get_store(
            "s3://roman/data-tests",
            endpoint=s3.endpoint_url,
            key=opts["key"],
            secret=opts["secret"],
        )
    _stage(store, product_files)
    yield store, product_files
    if request.param == "local":
        shutil.rmtree(store.root, ignore_errors=True)
    else:
        store.fs.rm(store.root, recursive=True)
