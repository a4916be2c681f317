"""Lazy public names for the science subpackages.

romancal, photutils and scipy take seconds to import; the ``roman-platform`` command and the hub
import these packages' CLIs and light helpers only, so each package lists its public names and
the module that defines them, and the import happens on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving ``exports[name]`` (a submodule of ``package``)."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
