"""The local platform's fixtures: see tests/support/platform.py (shared with other suites)."""

from tests.support.platform import (  # noqa: F401  (fixtures, found by pytest by name)
    hub_api,
    login,
    platform_dirs,
    start_platform,
    web_login,
)
