"""The previous environment's local overlay, which ``make setup`` makes (``make-local --missing``):
a test that needs it fails, naming the command, rather than skipping (the project installs it)."""

from __future__ import annotations

import pytest

from hub_config.environments import local_mismatch
from hub_config.policy import SoftwareEnvironment, load_policy


def previous_overlay(name: str = "2026.2") -> SoftwareEnvironment:
    env = load_policy().environment(name)
    why = local_mismatch(env)
    if why:
        pytest.fail(
            f"no local overlay of {name}: {why}. `make setup` makes it "
            "(.venv/bin/python -m hub_config.environments make-local --missing)"
        )
    return env
