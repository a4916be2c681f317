"""The security suite runs against ONE real local platform (``roman-platform up``) per session.

It reuses the quota tests' platform fixture (the hub, the development OIDC provider, the quota
service sampling every second, the gateway, SeaweedFS), loaded by path because the test folders
are not packages. Every test here repeats an attack from outside (plain HTTP, the S3 API, a
kernel in a user's server) and asserts that it is refused.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "quota_conftest", Path(__file__).resolve().parents[1] / "quota" / "conftest.py")
_quota = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_quota)

quota_platform = _quota.quota_platform  # the session's platform (fixture)
