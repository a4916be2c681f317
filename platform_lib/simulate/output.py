"""Writing simulated products into the data store (a local folder or ``s3://`` via fsspec).

The platform's store (:mod:`platform_lib.data.store`) gives one object for both; the image is
written first and its truth catalog (``<image stem>_truth.ecsv``) beside it.
"""

from __future__ import annotations

import os
from pathlib import Path


class _FsspecStore:
    """Plain fsspec, for an installation without platform_lib.data (same three methods)."""

    def __init__(self, url: str) -> None:
        import fsspec

        self.root_url = url
        self.fs, self.root = fsspec.core.url_to_fs(url)

    def url(self, relative: str) -> str:
        path = f"{self.root.rstrip('/')}/{relative}"
        return f"s3://{path}" if self.root_url.startswith("s3") else path

    @property
    def is_s3(self) -> bool:
        return self.root_url.startswith("s3")

    def path(self, relative: str) -> str:
        return f"{self.root.rstrip('/')}/{relative}"

    def open(self, relative: str, mode: str = "rb"):
        return self.fs.open(self.path(relative), mode)

    def write_bytes(self, relative: str, data: bytes) -> None:
        if not self.is_s3:
            Path(self.path(relative)).parent.mkdir(parents=True, exist_ok=True)
        self.fs.pipe_file(self.path(relative), data)


def get_store(url: str | os.PathLike):
    """The data store at ``url`` (the platform's store; a folder is created if missing)."""
    url = os.fspath(url)
    if "://" not in url:
        Path(url).mkdir(parents=True, exist_ok=True)
    try:
        from platform_lib.data.store import get_store as _get_store
    except ImportError:
        return _FsspecStore(url)
    return _get_store(url)


def truth_name(image_name: str) -> str:
    stem = image_name[: -len(".asdf")] if image_name.endswith(".asdf") else image_name
    return f"{stem}_truth.ecsv"


def write_product(sim, url, name: str) -> dict[str, str]:
    """Write ``sim`` (a SimulatedImage) as ``name`` under the store ``url``; return both URLs."""
    store = get_store(url)
    truth_bytes = sim.truth_bytes()
    if not store.is_s3:
        Path(store.path(name)).parent.mkdir(parents=True, exist_ok=True)
    # streamed, not built in memory first: a full-detector L1 is ~1 GB
    with store.open(name, "wb") as f:
        sim.write_to(f)
    store.write_bytes(truth_name(name), truth_bytes)
    return {"image": store.url(name), "truth": store.url(truth_name(name))}
