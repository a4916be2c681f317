"""Reading and writing products in the data store (a local folder or ``s3://bucket/prefix``).

romancal reads and writes local files only, so every product passes through a local working
folder; what reaches the store is always a complete file. Local destinations are written to a
temporary name in the same folder and renamed (atomic on POSIX); S3 objects only become visible
once their upload completes, so a crash never leaves a half-written product under its final name.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any


def storage_options(url: str) -> dict[str, Any]:
    """fsspec options for ``url`` from the spawner's environment contract."""
    if not url.startswith("s3://"):
        return {}
    opts: dict[str, Any] = {}
    endpoint = os.environ.get("ROMAN_DATA_S3_ENDPOINT")
    if endpoint:
        opts["client_kwargs"] = {"endpoint_url": endpoint}
        opts["config_kwargs"] = {"s3": {"addressing_style": "path"}}
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        opts["key"] = os.environ["AWS_ACCESS_KEY_ID"]
        opts["secret"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    return opts


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path within it) for a store URL or local path."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **storage_options(url))
    return fs, path


def is_remote(url: str) -> bool:
    return "://" in str(url) and not str(url).startswith("file://")


def join(base: str, *parts: str) -> str:
    base = str(base)
    if is_remote(base):
        return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])
    return str(Path(base, *parts))


def exists(url: str) -> bool:
    fs, path = filesystem(str(url))
    return fs.exists(path)


def publish(local_file: str | Path, dest: str) -> str:
    """Copy a finished local file to ``dest`` so that ``dest`` is either absent or complete."""
    local_file = Path(local_file)
    dest = str(dest)
    if not is_remote(dest):
        dest_path = Path(dest)
        dest_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest_path.with_name(f".{dest_path.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            shutil.copyfile(local_file, tmp)
            os.replace(tmp, dest_path)
        finally:
            tmp.unlink(missing_ok=True)
        return str(dest_path)
    fs, path = filesystem(dest)
    fs.put_file(str(local_file), path)
    return dest


def fetch(src: str, local_dir: str | Path) -> Path:
    """A local copy of ``src`` (returned as is when it is already a local file)."""
    src = str(src)
    if not is_remote(src):
        p = Path(src.removeprefix("file://"))
        if not p.exists():
            raise FileNotFoundError(f"no such file: {p}")
        return p
    fs, path = filesystem(src)
    if not fs.exists(path):
        raise FileNotFoundError(f"no such object in the data store: {src}")
    local = Path(local_dir) / Path(path).name
    local.parent.mkdir(parents=True, exist_ok=True)
    part = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        fs.get_file(path, str(part))
        os.replace(part, local)  # a concurrent reader never sees half a file
    finally:
        part.unlink(missing_ok=True)
    return local


def remove(url: str) -> None:
    fs, path = filesystem(str(url))
    if fs.exists(path):
        fs.rm(path)
