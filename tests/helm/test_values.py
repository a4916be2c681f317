"""values.schema.json is generated from the one policy schema; bad values fail with a clear message."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from hub_config.policy import Policy, parse_policy


def test_committed_schema_is_a_fresh_generation(chart):
    proc = subprocess.run(
        [sys.executable, str(chart.REPO / "scripts" / "gen-values-schema.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_policy_part_comes_from_the_policy_models(chart):
    schema = json.loads((chart.CHART / "values.schema.json").read_text())
    policy = schema["properties"]["policy"]
    assert set(policy["properties"]) == set(Policy.model_fields)
    profile = schema["$defs"]["policy.ServerProfile"]
    assert set(profile["properties"]) == set(
        Policy.model_fields["profiles"].annotation.__args__[1].model_fields
    )
    assert profile["additionalProperties"] is False
    assert profile["properties"]["cpu_limit"]["exclusiveMinimum"] == 0


def test_effective_policy_is_a_valid_policy(chart, config):
    """What the hub loads (bundled policy + the values' overrides) passes the hub's own validation."""
    cm = chart.find(chart.render(config), "ConfigMap", "rp-hub")
    policy = parse_policy(yaml.safe_load(cm["data"]["policy.yaml"]))
    values = yaml.safe_load(cm["data"]["values.yaml"])
    su = values["singleuser"]["image"]
    assert policy.images.default == f"{su['name']}:{su['tag']}"
    if config == "kind":
        assert (
            policy.profiles["large"].cpu_guarantee == 0.1
            and policy.profiles["large"].cpu_limit == 8
        )
    assert values["auth"]["oidc"]["clientSecret"] == ""  # never in the ConfigMap


BAD_VALUES = [
    pytest.param(
        {"policy.tiers.entry.profiles": "{small,huge}"},
        'policy.tiers.entry.profiles names profile "huge", which policy.profiles does not define',
        id="unknown-profile-in-tier",
    ),
    pytest.param(
        {"policy.default_tier": "platinum"},
        'policy.default_tier "platinum" is not one of the tiers',
        id="unknown-default-tier",
    ),
    pytest.param(
        {"policy.profiles.small.cpu_limit": "-1"},
        "/policy/profiles/small/cpu_limit",
        id="negative-policy-cpu",
    ),
    pytest.param(
        {"hub.resources.limits.cpu": "-2"}, "/hub/resources/limits/cpu", id="negative-hub-cpu"
    ),
    pytest.param(
        {"policy.profiles.small.cpu_guarantee": "4"},
        "policy.profiles.small: cpu_guarantee 4 exceeds cpu_limit 1",
        id="guarantee-over-limit",
    ),
    pytest.param(
        {"policy.profiles.small.cpus": "2"}, "/policy/profiles/small", id="unknown-policy-key"
    ),
    pytest.param(
        {"auth.oidc.existingSecret": ""},
        "production mode needs the OIDC client secret",
        id="missing-oidc-secret-in-production",
    ),
    pytest.param(
        {"auth.devProvider.enabled": "true"},
        "the development OIDC provider cannot run in production mode",
        id="dev-provider-in-production",
    ),
    pytest.param({"hub.image.tag": "latest"}, "/hub/image/tag", id="latest-tag"),
    pytest.param({"hub.replica": "2"}, "additional properties 'replica' not allowed", id="typo"),
    pytest.param(
        {"ingress.enabled": "true", "ingress.hosts": "{roman.example.org}"},
        "production mode serves the hub over TLS only",
        id="ingress-without-tls",
    ),
    pytest.param(
        {"auth.oidc.issuer": "http://insecure.example.org"},
        "needs an https:// issuer",
        id="plain-http-issuer",
    ),
    pytest.param(
        {
            "policy.environments[0].name": "2027.1",
            "policy.environments[0].default": "true",
            "policy.environments[1].name": "2026.3",
            "policy.environments[1].default": "true",
        },
        "policy.environments: exactly one must have default: true (found 2: 2027.1, 2026.3)",
        id="two-default-environments",
    ),
    pytest.param(
        {
            "policy.environments[0].name": "2026.3",
            "policy.environments[0].default": "true",
            "policy.environments[1].name": "2026.3",
        },
        'policy.environments: the name "2026.3" is listed more than once',
        id="environment-twice",
    ),
    pytest.param(
        {
            "policy.environments[0].name": "2026.3",
            "policy.environments[0].default": "true",
            "policy.environments[1].name": "old",
            "policy.environments[1].image": "roman-platform/notebook:latest",
        },
        'policy.environments.1.image "roman-platform/notebook:latest": an environment\'s image must be pinned',
        id="floating-environment-image",
    ),
    pytest.param(
        {"hub.db.type": "external"},
        "hub.db.type=external needs a Secret",
        id="external-db-no-secret",
    ),
]


@pytest.mark.parametrize(("sets", "message"), BAD_VALUES)
def test_bad_values_fail_with_a_clear_message(chart, sets, message):
    proc = chart.template([], sets, check=False)
    assert proc.returncode != 0, f"helm template accepted {sets}"
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "goroutine" not in proc.stderr


def test_bad_values_in_an_example_file_too(chart, tmp_path):
    """A production example with the secret removed is refused exactly like the defaults."""
    prod = yaml.safe_load((chart.EXAMPLES / "cloud-production.yaml").read_text())
    prod["auth"]["oidc"]["existingSecret"] = ""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(prod))
    proc = chart.helm("template", "rp", str(chart.CHART), "-f", str(bad), check=False)
    assert proc.returncode != 0 and "OIDC client secret" in proc.stderr
