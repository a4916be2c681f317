"""Versions of a HATS collection, switched with one write, so a reader never sees a mix.

Why: republishing a collection in place (the light-curve store does it after every batch) let a
reader that opened it meanwhile (a notebook, a Dask worker running ``lsdb.open_catalog``) see
some partitions of the old version and some of the new, or a half-written properties file. S3
has no atomic rename of a folder, but one PUT of one object is atomic, and so is ``os.replace``
of one file in a folder. So:

- Every publication writes a complete new version under ``<collection>/versions/<id>/`` (``id``
  = UTC start time + 6 random hex digits, e.g. ``20261207T012800123456Z-a1b2c3``): a HATS
  collection of its own (catalog, margin cache, index catalogs, ``collection.properties``), then a
  ``PUBLISHED`` marker (the time, JSON) as its last file.
- Then ONE small write switches readers: the collection's own ``collection.properties``, the
  pointer, is replaced by a copy of the version's with every table path prefixed by
  ``versions/<id>/`` (``all_indexes`` too: an index is read from the same version as the
  catalog it points into, never from another). That file is what ``lsdb.open_catalog(<collection>)`` and
  ``hats.read_hats`` read first and once, so even plain LSDB readers that know nothing of
  versions open one whole version (the choice of this file over a separate ``CURRENT`` file:
  the pointer and the collection descriptor are one object, so no reader can skip it).
  :func:`resolve` reads it the same way and returns the version's own folder (what
  ``platform_lib.data.hats.open_catalog`` opens, so a margin named by its plain name works).
- A collection written before this change (its ``collection.properties`` names tables by bare
  name, no ``versions/`` prefix) is read as before, the folder itself. Its next publication
  migrates it: the new version goes under ``versions/``, the pointer is replaced, and the old
  top-level tables are kept as a version of their own, removed like any superseded version.
- Two concurrent publishers each write their own version folder; the last pointer write wins
  and each reader opens whichever version the pointer named when it read it, never a mix. The
  loser's version is a superseded one like any other.

Old versions go only after a grace period (``grace_seconds``, default
:data:`DEFAULT_GRACE_SECONDS`, one hour): a reader that read the pointer a moment ago (its lazy
catalog holds the version's paths) keeps working. After each publication :func:`prune` removes a
superseded version V only once a version published after V was published more than the grace
period ago (so V has been out of the pointer at least that long), and never the current one nor
the newest superseded one (the previous). A publication that fails half-way never wrote the
pointer, so readers stay on the old complete version; the failing publisher removes its partial
folder as the exception passes (:func:`publish_version`), and one left by a process that died
(no ``PUBLISHED`` marker) is removed by the first publication that runs more than the grace
period after that folder's start time: younger, it cannot be told from a concurrent publisher's
work in progress. So the grace period must exceed the longest publication.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from .store import Store

__all__ = [
    "DEFAULT_GRACE_SECONDS",
    "POINTER",
    "VERSIONS",
    "current_version",
    "new_version_id",
    "prune",
    "publish_version",
    "resolve",
]

log = logging.getLogger(__name__)

DEFAULT_GRACE_SECONDS = 3600.0
POINTER = "collection.properties"  # the collection descriptor is the pointer
VERSIONS = "versions"
MARKER = "PUBLISHED"
_ID = re.compile(r"^(\d{8}T\d{12})Z-[0-9a-f]{6}$")
_PATH_KEYS = ("hats_primary_table_url", "default_margin")  # one table path each
_LIST_KEYS = ("all_margins",)  # space-separated table paths
_PAIR_KEYS = ("all_indexes",)  # space-separated (field, table path) pairs


def new_version_id(now: float | None = None) -> str:
    """A version folder name: UTC start time (sortable, microseconds) + 6 random hex digits."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return f"{stamp:%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(3)}"


def _started(version: str) -> float:
    """A version's start time (epoch seconds), from its name."""
    match = _ID.match(version)
    if match is None:
        raise ValueError(f"{version!r} is not a version name")
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC).timestamp()


def _properties(text: str) -> list[tuple[str, str]]:
    """``key=value`` lines of a HATS properties file (comments and blank lines dropped)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, value = line.split("=", 1)
            out.append((key.strip(), value.strip()))
    return out


def _version_of(pointer_text: str) -> str | None:
    """The version a collection's ``collection.properties`` names, None for an unversioned one."""
    for key, value in _properties(pointer_text):
        if key == "hats_primary_table_url":
            parts = value.split("/")
            if len(parts) == 3 and parts[0] == VERSIONS and _ID.match(parts[1]):
                return parts[1]
            return None
    return None


def _pointer_text(version_properties: str, version: str) -> str:
    """The version's ``collection.properties`` with every table path under ``versions/<id>/``."""
    prefix = f"{VERSIONS}/{version}/"
    lines = [
        f"#HATS Collection: version {version}, switched to in one write (platform_lib.data.hats_versions)"
    ]
    seen = set()
    for key, value in _properties(version_properties):
        seen.add(key)
        if key in _PATH_KEYS:
            value = prefix + value
        elif key in _LIST_KEYS:
            value = " ".join(prefix + v for v in value.split())
        elif key in _PAIR_KEYS:
            words = value.split()
            if len(words) % 2:
                raise ValueError(f"collection.properties: {key} is not (field, path) pairs")
            value = " ".join(w if i % 2 == 0 else prefix + w for i, w in enumerate(words))
        elif key == "all_extensions":
            raise ValueError(
                f"collection.properties: {key} is not supported in a versioned collection"
            )
        lines.append(f"{key}={value}")
    if "hats_primary_table_url" not in seen:
        raise ValueError("the version's collection.properties names no hats_primary_table_url")
    return "\n".join(lines) + "\n"


def current_version(store: Store) -> str | None:
    """The version the collection at ``store`` points at; None if it has none (unversioned, or
    no collection there). One read of the pointer."""
    try:
        text = store.read_bytes(POINTER).decode()
    except FileNotFoundError:
        return None
    return _version_of(text)


def resolve(url: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """What to open for the collection at ``url``: its current version's folder, or ``url``
    itself for an unversioned collection, a plain catalog, or a path with no pointer."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    try:
        text = fs.cat_file(posixpath.join(root, POINTER)).decode()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return url
    version = _version_of(text)
    if version is None:
        return url
    return f"{url.rstrip('/')}/{VERSIONS}/{version}"


def publish_version(
    store: Store,
    write: Callable[[str], None],
    *,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
) -> str:
    """Publish one version of the collection at ``store``; returns its id.

    ``write(prefix)`` puts a complete HATS collection under ``prefix`` (``versions/<id>``,
    relative to the store), its own ``collection.properties`` included. Then the ``PUBLISHED``
    marker, then the pointer in one write, then :func:`prune`. If ``write`` (or the marker) fails,
    the pointer is untouched, the partial folder is removed (best effort) and the error raised.
    """
    if grace_seconds < 0:
        raise ValueError(f"grace_seconds must be >= 0, not {grace_seconds}")
    version = new_version_id()
    prefix = f"{VERSIONS}/{version}"
    try:
        write(prefix)
        pointer = _pointer_text(store.read_bytes(f"{prefix}/{POINTER}").decode(), version)
        published = time.time()
        store.write_bytes(
            f"{prefix}/{MARKER}",
            json.dumps({"published": published, "utc": datetime.now(UTC).isoformat()}).encode(),
        )
    except BaseException:
        _remove(store, [prefix])
        raise
    store.replace_bytes(POINTER, pointer.encode())  # the switch: one PUT / os.replace
    prune(store, grace_seconds=grace_seconds)
    return version


def prune(
    store: Store, *, grace_seconds: float = DEFAULT_GRACE_SECONDS, now: float | None = None
) -> list[str]:
    """Remove what no reader can still be reading; returns what went (version ids, ``legacy``).

    Kept: the current version, the newest superseded complete one, any version superseded for
    less than ``grace_seconds`` (one published after it is younger than that), any unfinished
    folder started less than ``grace_seconds`` ago. An unversioned collection is not touched.
    """
    now = time.time() if now is None else now
    if store.is_s3:
        store.fs.invalidate_cache(store.root)
    current = current_version(store)
    if current is None:
        return []
    versions: set[str] = set()
    marked: set[str] = set()
    legacy: set[str] = set()
    for rel in store.walk_files():
        top, _, rest = rel.partition("/")
        if top == VERSIONS:
            version, _, name = rest.partition("/")
            if _ID.match(version):
                versions.add(version)
                if name == MARKER:
                    marked.add(version)
        elif rel != POINTER and not (top.startswith(f".{POINTER}.") and top.endswith(".tmp")):
            legacy.add(top)  # a table of the unversioned collection this one was migrated from
    published = {}
    for version in marked:
        try:
            published[version] = float(
                json.loads(store.read_bytes(f"{VERSIONS}/{version}/{MARKER}"))["published"]
            )
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            continue  # removed meanwhile by another publisher's prune, or not ours: leave it
    superseded = sorted((t, v) for v, t in published.items() if v != current)
    previous = superseded[-1][1] if superseded else ("legacy" if legacy else None)
    old_enough = [t for t in published.values() if t <= now - grace_seconds]

    def retired(t: float) -> bool:  # a version published after t, itself older than the grace
        return any(u > t for u in old_enough)

    gone = []
    for t, version in superseded:
        if version != previous and retired(t):
            gone.append(version)
    for version in versions - set(published) - {current}:
        if _started(version) <= now - grace_seconds:
            gone.append(version)  # unfinished: its publisher died (or failed) long ago
    _remove(store, [f"{VERSIONS}/{v}" for v in gone])
    if legacy and previous != "legacy" and retired(float("-inf")):
        _remove(store, sorted(legacy))
        gone.append("legacy")
    return gone


def _remove(store: Store, relatives: list[str]) -> None:
    """Remove folders/files of the store, logging (not raising) a failure: what stays is
    removed by a later prune."""
    if not relatives:
        return
    try:
        paths = [store.path(r) for r in relatives]
        present = [p for p in paths if store.fs.exists(p)]
        if present:
            store.fs.rm(present, recursive=True)
        if store.is_s3:
            store.fs.invalidate_cache(store.root)
    except Exception as exc:  # a later prune retries
        log.warning("could not remove %s from %s: %s", relatives, store.root_url, exc)
