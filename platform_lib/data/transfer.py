"""Whole URLs (``s3://bucket/prefix/file`` or a local path) reached through the data stores.

The calibration pipeline, and anything else handed full URLs rather than paths inside one
store, reads and writes through :mod:`platform_lib.data.store`: the same :class:`Store`, the
same credentials and endpoint (``get_store``'s environment contract), the same
:class:`DataStoreError` messages. romancal reads and writes local files only, so products
pass through a local working folder; what reaches a destination is always a complete file.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import uuid
from pathlib import Path

import fsspec

from .store import _KNOWN, DataStoreError, Store, _normalise, _wrap_errors, get_store

__all__ = ["store_for", "is_remote", "join", "exists", "publish", "fetch"]


def store_for(url: str) -> tuple[Store, str]:
    """(the store holding ``url``, the path of ``url`` relative to its root).

    For an S3 URL, a store this session already reached whose root holds ``url`` is used as is
    (same credentials and endpoint as then); otherwise the bucket's store from the environment
    (:func:`get_store`). A local path or ``file://`` URL is a path in the local filesystem.
    """
    url = str(url)
    if not is_remote(url):
        path = str(Path(url.removeprefix("file://")).expanduser().resolve())
        return Store(root_url="/", fs=fsspec.filesystem("file"), root="/"), path.lstrip("/")
    if not url.startswith(("s3://", "s3a://")):
        raise DataStoreError(
            f"unsupported store URL {url!r}: use a local folder or s3://bucket/prefix"
        )
    norm = _normalise(url)
    for root in sorted((r for r in _KNOWN if r.startswith("s3://")), key=len, reverse=True):
        if norm == root or norm.startswith(root + "/"):
            return _KNOWN[root], norm[len(root) :].lstrip("/")
    bucket, _, rest = norm[len("s3://") :].partition("/")
    return get_store(f"s3://{bucket}"), rest


def is_remote(url: str | os.PathLike) -> bool:
    """A URL with a scheme other than ``file://`` (not a local path)."""
    return "://" in str(url) and not str(url).startswith("file://")


def join(base: str, *parts: str) -> str:
    """``base`` and ``parts`` joined as a URL (remote) or a local path."""
    base = str(base)
    if is_remote(base):
        return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])
    return str(Path(base, *parts))


def exists(url: str) -> bool:
    if not is_remote(url):
        return Path(str(url).removeprefix("file://")).exists()
    store, rel = store_for(str(url))
    return store.exists(rel)


def publish(local_file: str | os.PathLike, dest: str) -> str:
    """Copy a finished local file to ``dest`` so that ``dest`` is either absent or complete.

    Local destinations are written under a temporary name in the same folder and renamed
    (atomic on POSIX); an S3 object only becomes visible once its upload completes.
    """
    local_file = Path(local_file)
    dest = str(dest)
    if not is_remote(dest):
        dest_path = Path(dest.removeprefix("file://"))
        dest_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest_path.with_name(f".{dest_path.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            shutil.copyfile(local_file, tmp)
            os.replace(tmp, dest_path)
        finally:
            tmp.unlink(missing_ok=True)
        return str(dest_path)
    store, rel = store_for(dest)
    store.put_file(local_file, rel)
    return dest


def fetch(src: str, local_dir: str | os.PathLike) -> Path:
    """A local copy of ``src`` in ``local_dir`` (a local file is returned as is)."""
    src = str(src)
    if not is_remote(src):
        p = Path(src.removeprefix("file://"))
        if not p.exists():
            raise FileNotFoundError(f"no such file: {p}")
        return p
    store, rel = store_for(src)
    if not store.exists(rel):
        raise FileNotFoundError(f"no such object in the data store: {src}")
    local = Path(local_dir) / posixpath.basename(rel)
    local.parent.mkdir(parents=True, exist_ok=True)
    part = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        _wrap_errors(store, lambda: store.fs.get_file(store.path(rel), str(part)))
        os.replace(part, local)  # a concurrent reader never sees half a file
    finally:
        part.unlink(missing_ok=True)
    return local
