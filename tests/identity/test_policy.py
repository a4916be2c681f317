"""The tier policy file and its readers' helpers (no processes)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from hub_config.policy import (
    DEFAULT_POLICY_PATH,
    Policy,
    PolicyError,
    StaticGrants,
    TierGrantSource,
    load_policy,
    parse_policy,
    teams_of_groups,
)


def _data() -> dict:
    return yaml.safe_load(DEFAULT_POLICY_PATH.read_text())


def test_bundled_policy_tiers_and_sizes():
    p = load_policy(DEFAULT_POLICY_PATH)
    assert p.tier_names == ["entry", "research", "team", "consortium"]
    assert p.default_tier == "entry"
    # The SOC tier table.
    assert [p.tier(t).expected_users for t in p.tier_names] == [5000, 1500, 50, 5]
    assert p.tier("team").shared and p.tier("consortium").shared
    # Each tier offers at least what the one below offers, and limits grow with rank.
    for lower, upper in zip(p.tier_names, p.tier_names[1:]):
        assert set(p.profiles_for(lower)) <= set(p.profiles_for(upper))
        lo, hi = p.gateway_limits(lower), p.gateway_limits(upper)
        assert hi.max_total_cores > lo.max_total_cores and hi.max_clusters >= lo.max_clusters
        assert p.tier(upper).max_named_servers >= p.tier(lower).max_named_servers
    assert list(p.profiles_for("entry")) == ["small"]
    assert p.profiles["gpu"].gpus == 1 and p.profiles["gpu"].tolerations
    assert p.image_for(p.profiles["small"]) == p.images.default


def test_bundled_environments_current_and_previous():
    p = load_policy(DEFAULT_POLICY_PATH)
    assert p.environment_names == ["2026.3", "2026.2"]
    current, previous = p.environment(), p.environment("2026.2")
    assert current.name == "2026.3" and current.default and not previous.default
    assert p.images.default == current.image
    assert p.image_for(p.profiles["small"], "2026.2") == previous.image != current.image
    from packaging.version import Version

    assert Version(previous.versions.romancal) < Version(current.versions.romancal)
    with pytest.raises(KeyError, match="unknown environment '1999.1'.*2026.3, 2026.2"):
        p.environment("1999.1")


def _env_edit(index, **changes):
    return lambda d: d["environments"][index].update(changes)


def _dup_env(d):
    d["environments"].append({**d["environments"][1], "default": False})


@pytest.mark.parametrize(
    "edit, where",
    [
        (_dup_env, "name(s) ['2026.2'] listed more than once"),
        (_env_edit(0, default=False), "exactly one must be the default (default: true); found 0"),
        (_env_edit(1, default=True), "found 2 (2026.3, 2026.2)"),
        (_env_edit(1, image="roman-platform/notebook:latest"), "must be pinned"),
        (_env_edit(1, image="roman-platform/notebook"), "environments.1.image"),
        (_env_edit(0, image="roman-platform/notebook:2026.9"), "images.default"),
        (_env_edit(1, name="bad name!"), "environments.1.name"),
        (
            lambda d: d["environments"][1]["versions"].update(crds_context="latest"),
            "environments.1.versions.crds_context",
        ),
        (lambda d: d["environments"][1]["versions"].pop("romancal"), "versions.romancal"),
        (_env_edit(1, python="3.12"), "environments.1.python"),
        (
            lambda d: d["profiles"]["gpu"].update(image="roman-platform/gpu:1"),
            "profiles ['gpu'] name their own image",
        ),
    ],
)
def test_invalid_environments_name_the_problem(edit, where):
    data = _data()
    edit(data)
    with pytest.raises(PolicyError) as exc:
        parse_policy(data, "policy.yaml")
    assert where in str(exc.value) and "policy.yaml" in str(exc.value), str(exc.value)


def test_a_policy_without_environments_keeps_one_image():
    data = _data()
    del data["environments"]
    data["images"]["default"] = "roman-notebook:latest"
    p = parse_policy(data)
    assert p.environments == [] and p.default_environment is None
    assert p.image_for(p.profiles["small"]) == "roman-notebook:latest"


@pytest.mark.parametrize(
    "edit, where",
    [
        (lambda d: d["profiles"]["small"].update(cpu_limit=0), "profiles.small.cpu_limit"),
        (lambda d: d["profiles"]["small"].update(cpu_guarantee=8), "profiles.small"),
        (lambda d: d["tiers"]["entry"].update(profiles=["huge"]), "unknown profile"),
        (
            lambda d: d["tiers"]["entry"]["gateway"].update(max_workers=-1),
            "tiers.entry.gateway.max_workers",
        ),
        (
            lambda d: d["tiers"]["entry"]["gateway"]["worker_cores"].update(min=4, max=1),
            "worker_cores",
        ),
        (lambda d: d["tiers"]["research"].update(max_servers=3), "tiers.research.max_servers"),
        (lambda d: d.update(default_tier="gold"), "default_tier"),
    ],
)
def test_invalid_policy_names_the_field(edit, where):
    data = _data()
    edit(data)
    with pytest.raises(PolicyError) as exc:
        parse_policy(data, "policy.yaml")
    assert where in str(exc.value) and "policy.yaml" in str(exc.value)


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tiers: [unclosed\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(bad)


def test_schema_is_clean_for_the_chart():
    schema = Policy.model_json_schema()
    profile = schema["$defs"]["ServerProfile"]
    assert profile["properties"]["cpu_limit"]["exclusiveMinimum"] == 0
    assert profile["additionalProperties"] is False
    assert "description" in profile["properties"]["mem_limit_gib"]
    # The bundled policy validates against its own JSON schema (what helm lint will use).
    import jsonschema

    jsonschema.validate(_data(), schema)


def test_tier_decisions_from_groups_and_idp():
    p = load_policy(DEFAULT_POLICY_PATH)
    assert p.tier_of_groups(["team-galaxies"]) == "entry"  # no tier group: the default
    assert p.tier_of_groups(["tier-research"]) == "research"
    assert p.tier_of_groups(["tier-consortium", "tier-research"]) == "research"  # lowest wins
    assert p.tier_of_groups(["tier-bogus"]) == "entry"
    assert p.tier_from_idp(["roman-team", "roman-research"]) == "team"  # highest mapping
    assert p.tier_from_idp([], "consortium") == "consortium"
    assert p.tier_from_idp(["unrelated"], "platinum") is None
    assert teams_of_groups(["team-a", "team-a-admins", "tier-team"]) == ({"a"}, {"a"})
    grants = StaticGrants({"ann": "team"})
    assert isinstance(grants, TierGrantSource) and grants.granted_tier("ann") == "team"
    assert grants.granted_tier("bob") is None


def test_authenticator_tier_resolution(tmp_path):
    from hub_config.auth import RomanOIDCAuthenticator

    auth = RomanOIDCAuthenticator(tier_grants=StaticGrants({"ann": "consortium", "eve": "gold"}))
    assert auth.resolve_tier("ann", {"groups": []}) == ("consortium", "grant")
    assert auth.resolve_tier("bob", {"groups": ["roman-research"]}) == (
        "research",
        "identity provider",
    )
    assert auth.resolve_tier("eve", {"groups": []}) == ("entry", "default")  # unknown grant ignored
    # A grant below the IdP mapping does not lower it: the higher of the two applies.
    auth.tier_grants = StaticGrants({"bob": "entry"})
    assert auth.resolve_tier("bob", {"groups": ["roman-team"]})[0] == "team"


def test_dev_provider_refuses_non_loopback_and_bad_users(tmp_path):
    base = [
        sys.executable,
        "-m",
        "hub_config.oidc_dev",
        "--port",
        "1",
        "--client-id",
        "x",
        "--client-secret",
        "y",
        "--redirect-uri",
        "http://127.0.0.1/cb",
    ]
    r = subprocess.run([*base, "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "not a loopback address" in r.stderr
    users = tmp_path / "users.yaml"
    users.write_text("users:\n  - username: Bad Name\n    password: pw\n")
    r = subprocess.run([*base, "--users", str(users)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "users.0.username" in r.stderr
