"""The scale-out tests run the local platform the way tests/platform does (``roman-platform up``
as a subprocess, OIDC login, REST spawns, kernels over websockets): its fixtures are reused from
tests/platform/conftest.py, loaded here by path (importlib import mode gives conftest files no
importable name)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_NAME = "scaleout_platform_conftest"
if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        _NAME, Path(__file__).parents[1] / "platform" / "conftest.py"
    )
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _mod
    _spec.loader.exec_module(_mod)
_mod = sys.modules[_NAME]

hub_api = _mod.hub_api
login = _mod.login
platform_dirs = _mod.platform_dirs
start_platform = _mod.start_platform
