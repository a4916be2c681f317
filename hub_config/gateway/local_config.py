# dask-gateway-server configuration for the local platform (``dask-gateway-server -f THIS``).
#
# The whole configuration is hub_config.gateway.local.configure_local, from the settings file the
# supervisor wrote (ROMAN_PLATFORM_SETTINGS): the loopback-only local backend, the hub-token
# authenticator, the tier options and per-user totals, and the quota check.
from typing import Any

from hub_config.gateway.local import configure_local
from hub_config.settings import load_settings

c: Any = get_config()  # type: ignore[name-defined]  # noqa: F821  (traitlets gives config files get_config)

configure_local(c, load_settings())
