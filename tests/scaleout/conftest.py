"""The scale-out tests run the local platform the way tests/platform does (``roman-platform up``
as a subprocess, OIDC login, REST spawns, kernels over websockets), with the same fixtures."""

from tests.support.platform import (  # noqa: F401  (fixtures, found by pytest by name)
    hub_api,
    login,
    platform_dirs,
    start_platform,
)
