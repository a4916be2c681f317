"""The security suite runs against ONE real local platform (``roman-platform up``) per session.

It reuses the quota tests' platform fixture (the hub, the development OIDC provider, the quota
service sampling every second, the gateway, SeaweedFS), loaded by path because the test folders
are not packages. Every test here repeats an attack from outside (plain HTTP, the S3 API, a
kernel in a user's server) and asserts that it is refused.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "quota_conftest", Path(__file__).resolve().parents[1] / "quota" / "conftest.py"
)
_quota = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_quota)

quota_platform = _quota.quota_platform  # the session's platform (fixture)


@pytest.fixture(scope="session")
def user_gateway():
    """``user_gateway(qp, user)``: a dask-gateway client with that user's hub token."""

    def make(qp, user: str):
        from dask_gateway import Gateway
        from dask_gateway.auth import JupyterHubAuth

        g = qp.settings["gateway"]
        return Gateway(
            address=g["address"],
            proxy_address=g["proxy_address"],
            auth=JupyterHubAuth(api_token=qp.token(user)),
        )

    return make
