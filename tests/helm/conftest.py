"""Fixtures of the chart tests; the helpers are :mod:`tests.support.chart`."""

from __future__ import annotations

import pytest

from tests.support import chart as chart_helpers
from tests.support.chart import CONFIGS


@pytest.fixture(params=list(CONFIGS))
def config(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def chart():
    """The render helpers and checks, :mod:`tests.support.chart`."""
    return chart_helpers
