"""Where this user's results go (:func:`user_store_url`), read from the environment contract.

One home for a function two layers need: :mod:`platform_lib.compute` (Dask, below the data
package: ``data`` runs its searches and PSF builds on it) hands it to notebooks and workers,
and :mod:`platform_lib.data.user_store` builds the user's store on it. Here it sits below both,
importing only :mod:`platform_lib.env_contract`.
"""

from __future__ import annotations

import os

from .env_contract import DATA_URL, USER_STORE_URL

__all__ = ["user_store_url"]


def user_store_url(*parts: str) -> str:
    """Where this user's results go: ``$ROMAN_USER_STORE_URL`` (the user's own writable prefix,
    set by the spawner), else ``<ROMAN_DATA_URL>/users/<user>/`` (a laptop, a bare kernel).

    ``parts`` are joined below it with ``/``. The same value reaches gateway workers, so a task
    may write there itself."""
    base = os.environ.get(USER_STORE_URL)
    if not base:
        import getpass

        data = os.environ.get(DATA_URL)
        if not data:
            raise RuntimeError(
                f"neither {USER_STORE_URL} nor {DATA_URL} is set: no place "
                "to write results (the platform sets both in every server)"
            )
        user = os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
        base = f"{data.rstrip('/')}/users/{user}/"
    url = base if base.endswith("/") else base + "/"
    return url + "/".join(p.strip("/") for p in parts if p)
