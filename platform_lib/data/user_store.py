"""Where a user's results go: their own writable prefix, never the survey store.

On the platform the survey store (``$ROMAN_DATA_URL``) is read-only for users; every server (and
its Dask workers) gets ``$ROMAN_USER_STORE_URL``, the user's own writable prefix (2i2c's
``SCRATCH_BUCKET`` pattern), and ``$ROMAN_TEAM_STORE_URL``, the base of team spaces. The writing
commands (``catalog``, ``simulate``, ``calibrate``, ``data index``) resolve their outputs here, so
that none of them writes into the survey by default, and a write that the store refuses is one
line naming the variable instead of botocore's stack.
"""

from __future__ import annotations

import errno
import os
import uuid

from ..env_contract import DATA_URL, TEAM_STORE_URL, USER_STORE_URL
from ..locations import user_store_url
from .store import DataStoreError, Store, get_store

__all__ = [
    "USER_STORE_ENV",
    "TEAM_STORE_ENV",
    "user_store_url",
    "user_store",
    "is_location",
    "output_location",
    "ensure_writable",
    "ReadOnlyStoreError",
]

USER_STORE_ENV, TEAM_STORE_ENV = USER_STORE_URL, TEAM_STORE_URL


class ReadOnlyStoreError(DataStoreError):
    """A write into a store that refuses it (the survey store, another user's prefix)."""


def user_store(endpoint: str | None = None) -> Store | None:
    """The user's own store (``$ROMAN_USER_STORE_URL``), or None where it is not set."""
    url = os.environ.get(USER_STORE_ENV)
    return get_store(url, endpoint=endpoint) if url else None


def is_location(text: str) -> bool:
    """A full location (``s3://...``, ``file://...``, an absolute or ``./`` path), as opposed to
    a folder relative to a store."""
    return "://" in text or os.path.isabs(text) or text.startswith(("./", "../", "~"))


def output_location(
    out: str,
    store: str | None = None,
    endpoint: str | None = None,
) -> tuple[Store, str]:
    """(store, relative folder) a writing command writes ``out`` to.

    ``out`` a full location: there. Otherwise a folder in ``store`` when one was chosen
    explicitly (``--store``), else in the user's own store when ``$ROMAN_USER_STORE_URL`` is set,
    else in ``$ROMAN_DATA_URL`` (a laptop, where the survey folder is the user's own)."""
    if is_location(out):
        return get_store(out, endpoint=endpoint), ""
    if store is None:
        mine = user_store(endpoint)
        if mine is not None:
            return mine, out.strip("/")
    return get_store(store, endpoint=endpoint), out.strip("/")


def _refused(exc: BaseException) -> bool:
    if isinstance(exc, PermissionError):
        return True
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return True
    cause = exc.__cause__ or exc.__context__
    return isinstance(exc, DataStoreError) and cause is not None and _refused(cause)


def read_only_error(url: str, exc: BaseException | None = None) -> ReadOnlyStoreError:
    mine = os.environ.get(USER_STORE_ENV)
    where = (
        f"your own space is {USER_STORE_ENV}={mine}"
        if mine
        else f"set {USER_STORE_ENV} to a prefix you may write"
    )
    why = f" ({type(exc.__cause__ or exc).__name__})" if exc is not None else ""
    return ReadOnlyStoreError(
        f"cannot write to {url}: the store refuses writes{why}; {where} "
        "(results go there by default; --out/--store choose another)"
    )


def ensure_writable(store: Store, relative: str = "") -> None:
    """Fail now, before any work, when ``store`` refuses writes under ``relative``: one small
    probe object written and removed (S3 has no cheaper permission test)."""
    probe = "/".join(
        p for p in (relative.strip("/"), f".roman-write-probe-{uuid.uuid4().hex}") if p
    )
    try:
        store.write_bytes(probe, b"")
    except (OSError, DataStoreError) as exc:
        if _refused(exc):
            raise read_only_error(store.url(relative), exc) from exc
        raise
    try:
        store.fs.rm_file(store.path(probe))
    except Exception:
        pass


def index_target(
    store: str | None = None,
    endpoint: str | None = None,
    *,
    shared: bool = False,
) -> tuple[Store, str]:
    """(store, note) that ``data index`` indexes into, checked writable.

    With ``$ROMAN_USER_STORE_URL`` set, the default and the survey store itself both mean the
    user's own store: one shared index rewritten by whoever runs ``data index`` was the bug.
    ``shared=True`` (operators) indexes the named store as given."""
    mine = None if shared else user_store(endpoint)
    target = get_store(store, endpoint=endpoint) if store is not None else None
    note = ""
    if mine is not None:
        survey = os.environ.get(DATA_URL)
        if target is None:
            target = mine
        elif survey and target.root_url == get_store(survey, endpoint=endpoint).root_url:
            note = (
                f"the survey's index is shared (the operators maintain it): indexing your own "
                f"store {mine.root_url} instead, which data.search includes (--shared to override)"
            )
            target = mine
    if target is None:
        target = get_store(None, endpoint=endpoint)
    if target is mine and not target.is_s3:
        os.makedirs(target.root, exist_ok=True)  # a new user's folder store: nothing there yet
    target.check()  # a missing store is named as such (the probe would create a folder)
    ensure_writable(target, "_index")
    return target, note


def resolve_output(out: str, is_file: bool = False) -> str:
    """A command's ``--out`` as a location (``simulate``, ``calibrate``): a bare relative path is
    a folder (or file, ``is_file``) of the user's own store on the platform, never the survey's;
    the place is checked writable before any work. A full location is kept as given."""
    if os.environ.get(USER_STORE_ENV) and not is_location(out):
        out = user_store_url(out)
    folder = os.path.dirname(out.rstrip("/")) if is_file else out
    if "://" in folder or os.path.isdir(folder):  # a new local folder is made by the writers
        ensure_writable(get_store(folder))
    return out
