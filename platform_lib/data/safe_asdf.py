"""ASDF files checked before anything trusts them: the index, ``catalog`` and ``calibrate``.

asdf reads what a file says: a YAML tree with an alias bomb hangs it at 100 % CPU, a file cut
short inside its binary blocks opens fine (blocks are read lazily) and is indexed as a good
product, and metadata of the wrong kind only shows up when someone computes with it. So before
``asdf.open``:

* the tree is read as bytes (up to :attr:`YamlLimits.max_bytes`) and checked with
  :func:`platform_lib.safe_yaml.check_limits` (alias expansion, size, time);
* every block header after the tree is read (a few dozen bytes each, never the data) and each
  block must fit in the file, and the tree's highest ``source:`` index must exist;

and after it, :func:`check_metadata` refuses values a Roman product cannot have (a detector that
is not WFI01-18, an unknown optical element, a start time that is not a time, counts that are not
integers). Each failure is an :class:`AsdfInputError` whose message is one line naming the problem.
"""

from __future__ import annotations

import os
import re
from typing import Any, BinaryIO

from ..instrument import IMAGING_ELEMENTS, SPECTRAL_ELEMENTS
from ..safe_yaml import DEFAULT_LIMITS, YamlLimitError, YamlLimits, check_limits

__all__ = ["AsdfInputError", "check_asdf", "check_asdf_path", "check_metadata"]

BLOCK_MAGIC = b"\xd3BLK"
_TREE_END = re.compile(rb"\r?\n\.\.\.\r?\n")
_SOURCE = re.compile(rb"^\s*source:\s*(\d+)\s*$", re.M)
_CHUNK = 2**20
_HEAD = 2**13  # first read: the header and (usually) the whole tree of a product

DETECTOR = re.compile(r"^WFI(0[1-9]|1[0-8])$")
OPTICAL_ELEMENTS = frozenset({*IMAGING_ELEMENTS, *SPECTRAL_ELEMENTS, "DARK"})


class AsdfInputError(ValueError):
    """This file is not a sound ASDF product; the message says why in one line."""


def _size(f: BinaryIO) -> int:
    size = getattr(f, "size", None)
    if isinstance(size, int):
        return size
    here = f.tell()
    end = f.seek(0, os.SEEK_END)
    f.seek(here)
    return end


def _read_tree(f: BinaryIO, limits: YamlLimits) -> tuple[bytes, int]:
    """(tree bytes, offset just after its ``...`` line); ``b""`` and the header end if no tree."""
    head = f.read(min(_HEAD, limits.max_bytes))
    if not head.startswith(b"#ASDF "):
        raise AsdfInputError("not an ASDF file (no '#ASDF' header line)")
    start = head.find(b"%YAML")
    if start < 0:
        return b"", len(head) if BLOCK_MAGIC not in head else head.find(BLOCK_MAGIC)
    buf, searched = head, start
    while True:
        m = _TREE_END.search(buf, searched)
        searched = max(start, len(buf) - 8)  # the next search starts near the old end only
        if m:
            return buf[start : m.end()], m.end()
        if len(buf) > limits.max_bytes:
            raise AsdfInputError(f"ASDF tree is larger than the limit of {limits.max_bytes} bytes")
        more = f.read(min(max(len(buf), _HEAD), _CHUNK))  # grows, but never far past the tree
        if not more:
            raise AsdfInputError("truncated ASDF file: the YAML tree has no end ('...') line")
        buf += more


def _check_blocks(f: BinaryIO, offset: int, size: int, tree: bytes) -> int:
    """Walk the block headers from ``offset``; returns the number of blocks."""
    n = 0
    while offset < size:
        f.seek(offset)
        # a few bytes per block, never its data (on S3 every byte read is a ranged GET)
        chunk = f.read(min(64, size - offset))
        if n == 0 and BLOCK_MAGIC not in chunk:  # padding after the tree, if any
            f.seek(offset)
            chunk = f.read(min(_HEAD, size - offset))
        pos = chunk.find(BLOCK_MAGIC)
        if pos < 0 or chunk[:pos].strip(b" \t\r\n\0"):
            break  # no (more) blocks: padding, a block index or an end of file
        offset += pos
        f.seek(offset + 4)
        header_size = int.from_bytes(f.read(2), "big")
        header = f.read(header_size)
        if header_size < 48 or len(header) < header_size:
            raise AsdfInputError(
                f"truncated ASDF file: block {n} header is cut short at byte {offset}"
            )
        allocated = int.from_bytes(header[8:16], "big")
        used = int.from_bytes(header[16:24], "big")
        end = offset + 6 + header_size + used
        if used > allocated or end > size:
            raise AsdfInputError(
                f"truncated ASDF file: block {n} needs bytes up to {end} but the file has {size}"
            )
        offset += 6 + header_size + allocated
        n += 1
    sources = [int(s) for s in _SOURCE.findall(tree)]
    if sources and max(sources) >= n:
        raise AsdfInputError(
            f"truncated ASDF file: the tree uses block {max(sources)} but the file has {n} block(s)"
        )
    return n


def check_asdf(f: BinaryIO, limits: YamlLimits = DEFAULT_LIMITS) -> None:
    """Check an open binary ASDF file (local or fsspec) and seek it back to the start."""
    size = _size(f)
    f.seek(0)
    try:
        tree, end = _read_tree(f, limits)
        if tree:
            check_limits(tree, limits, source="ASDF tree")
        _check_blocks(f, end, size, tree)
    except YamlLimitError as exc:
        raise AsdfInputError(str(exc)) from None
    except AsdfInputError:
        raise
    except Exception as exc:
        raise AsdfInputError(
            f"unreadable ASDF tree ({type(exc).__name__}: {exc})".replace("\n", " ")
        ) from None
    finally:
        f.seek(0)


def check_asdf_path(path: str | os.PathLike[str], limits: YamlLimits = DEFAULT_LIMITS) -> None:
    """:func:`check_asdf` for a local file, with "empty file" and "missing file" said plainly."""
    path = os.fspath(path)
    try:
        if os.path.getsize(path) == 0:
            raise AsdfInputError(f"{path}: empty file (0 bytes), not an ASDF product")
        with open(path, "rb") as f:
            check_asdf(f, limits)
    except AsdfInputError as exc:
        message = str(exc)
        raise AsdfInputError(
            message if message.startswith(path) else f"{path}: {message}"
        ) from None
    except OSError as exc:
        raise AsdfInputError(f"{path}: cannot read: {exc.strerror}") from None


def _is_int(value: Any) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        or (
            hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu" and value.ndim == 0
        )
    )


def check_metadata(meta: Any, get: Any) -> None:
    """Refuse metadata no Roman product has. ``get(node, *keys)`` reads a field or None.

    Only fields that are present are checked (catalogs and PSF files lack some); a field that is
    there must be of its kind.
    """
    from astropy.time import Time

    for key in ("program", "visit", "exposure"):
        value = get(meta, "observation", key)
        if (
            value is not None
            and not _is_int(value)
            and not (isinstance(value, str) and value.isdigit())
        ):
            raise AsdfInputError(f"meta.observation.{key} is {value!r}, not an integer")
    det = get(meta, "instrument", "detector")
    if det is not None and not (isinstance(det, str) and DETECTOR.match(det)):
        raise AsdfInputError(f"meta.instrument.detector is {det!r}, not one of WFI01..WFI18")
    oe = get(meta, "instrument", "optical_element")
    if oe is not None and str(oe).upper() not in OPTICAL_ELEMENTS:
        raise AsdfInputError(
            f"meta.instrument.optical_element is {oe!r}, not a WFI optical element"
        )
    start = get(meta, "exposure", "start_time")
    if start is not None:
        try:
            Time(start)
        except Exception:
            raise AsdfInputError(f"meta.exposure.start_time is {start!r}, not a time") from None
    for key in ("exposure_time",):
        value = get(meta, "exposure", key)
        if value is not None:
            try:
                float(value)
            except (TypeError, ValueError):
                raise AsdfInputError(f"meta.exposure.{key} is {value!r}, not a number") from None
