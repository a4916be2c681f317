"""The OIDC login over HTTP against the real development provider, and each refusal."""

from __future__ import annotations

import base64
import json

import requests

from hub_config.policy import load_policy


def _conftest():
    import importlib.util
    import sys
    from pathlib import Path

    name = "identity_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("conftest.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


cf = _conftest()


def test_login_flow_sets_hub_cookie_and_tier_groups(stack):
    s = cf.login(stack, "research")
    r = s.get(f"{stack.hub_url}/hub/home", timeout=30)
    assert r.status_code == 200 and "research" in r.text
    info = stack.api("GET", "/users/research").json()
    assert info["groups"] == ["tier-research"]
    assert not info["admin"]
