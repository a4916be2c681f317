"""hub_config/chart_values.py: what a template could not know is refused with a clear message."""

from __future__ import annotations

import pytest
import yaml

from hub_config import chart_values
from hub_config.modes.kubernetes import configure_kubernetes


@pytest.fixture
def kind_values(chart, tmp_path, monkeypatch):
    cm = chart.find(chart.render("kind"), "ConfigMap", "rp-hub")["data"]
    path = tmp_path / "values.yaml"
    path.write_text(cm["values.yaml"])
    (tmp_path / "secret").mkdir()
    monkeypatch.setenv(chart_values.CHART_VALUES_ENV, str(path))
    monkeypatch.setenv(chart_values.CHART_SECRETS_ENV, str(tmp_path / "secret"))
    chart_values._load.cache_clear()
    yield yaml.safe_load(cm["values.yaml"])
    chart_values._load.cache_clear()


class _Config:
    """Just enough of a traitlets Config to see what was set."""

    def __init__(self):
        from traitlets.config import Config

        self.c = Config()


def test_reads_values_by_path(kind_values):
    assert chart_values.in_chart()
    assert chart_values.get("singleuser.image.name") == "roman-platform/notebook"
    assert chart_values.get("no.such.key", "fallback") == "fallback"
    assert chart_values.name("traefik") == "rp-traefik"
    with pytest.raises(chart_values.ChartValuesError, match="no object name 'nope'"):
        chart_values.name("nope")


def test_missing_secret_file_is_named(kind_values):
    with pytest.raises(
        chart_values.ChartValuesError, match="the hub Secret has no key 'gateway-token'"
    ):
        chart_values.secret("gateway-token")


def test_missing_issuer_stops_the_hub_with_the_value_to_set(kind_values):
    v = dict(kind_values)
    v["auth"] = {**v["auth"], "oidc": {**v["auth"]["oidc"], "issuer": ""}}
    with pytest.raises(chart_values.ChartValuesError, match=r"auth\.oidc\.issuer is not set"):
        configure_kubernetes(_Config().c, v)


def test_settings_have_the_local_shape(kind_values):
    settings = chart_values.chart_settings()
    assert settings.mode == "kubernetes"
    assert settings.hub.public_url == "http://kind-node.invalid:30080"
    assert settings.gateway.address == "http://rp-traefik.roman.svc:80/services/dask-gateway"
    assert settings.singleuser.environment["DASK_GATEWAY__AUTH__TYPE"] == "jupyterhub"
    # The OIDC section hub_config.auth.configure_oidc reads, as in local mode.
    assert settings.oidc["issuer"] == "http://kind-node.invalid:30081"
    assert settings.oidc["callback_url"] == "http://kind-node.invalid:30080/hub/oauth_callback"


def test_not_in_chart_without_the_variable(monkeypatch):
    monkeypatch.delenv(chart_values.CHART_VALUES_ENV, raising=False)
    assert not chart_values.in_chart()
    with pytest.raises(chart_values.ChartValuesError, match="not running from the Helm chart"):
        chart_values.values()
