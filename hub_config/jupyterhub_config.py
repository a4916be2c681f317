# The one JupyterHub configuration file of the Roman Science Platform.
#
# Loaded by the local platform (``roman-platform up``, settings from the JSON file named by
# ROMAN_PLATFORM_SETTINGS) and by the Helm chart's hub image (values through
# hub_config/chart_values.py). It picks one set-up and calls its function; the wiring lives in
# hub_config/modes/ (local.py, kubernetes.py, and common.py for what both share).
# traitlets injects ``get_config`` (and ``c``, the same object) when it loads this file.

from typing import TYPE_CHECKING

from hub_config import chart_values
from hub_config.modes.kubernetes import configure_kubernetes
from hub_config.modes.local import configure_local, local_settings

if TYPE_CHECKING:
    from traitlets.config import Config

    def get_config() -> Config: ...


c = get_config()

if chart_values.in_chart():
    configure_kubernetes(c)  # the Helm chart's values (hub_config/modes/kubernetes.py)
else:
    configure_local(c, local_settings())  # the supervisor's settings (hub_config/modes/local.py)
