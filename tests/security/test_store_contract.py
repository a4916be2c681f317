"""The ROMAN_USER_STORE_URL / ROMAN_TEAM_STORE_URL contract the spawner gives each server."""

from __future__ import annotations

from hub_config.local.spawner import store_urls


def test_user_and_team_prefixes_next_to_the_survey():
    env = store_urls("s3://roman/survey", "alice", "/h/alice")
    assert env == {
        "ROMAN_USER_STORE_URL": "s3://roman/users/alice/",
        "ROMAN_TEAM_STORE_URL": "s3://roman/teams/",
    }


def test_a_hostile_username_stays_one_path_component():
    env = store_urls("s3://roman", "../bob", "/h/x")
    assert env["ROMAN_USER_STORE_URL"] == "s3://roman/users/%2E.%2Fbob/"
    assert "/users/../" not in env["ROMAN_USER_STORE_URL"]


def test_folder_survey_uses_the_home():
    env = store_urls("/data/survey", "alice", "/h/alice")
    assert env["ROMAN_USER_STORE_URL"] == "/h/alice/store/"


def test_chart_sets_the_contract_with_kubespawners_username_expansion():
    import copy
    from pathlib import Path

    import yaml

    from hub_config.chart_values import singleuser_environment

    values = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "helm/roman-platform/values.yaml").read_text()
    )
    values["_chart"] = {
        "names": {"traefik": "rp-traefik", "proxyPublic": "rp-proxy-public"}
    }  # as the chart renders them
    assert "ROMAN_USER_STORE_URL" not in singleuser_environment(values)  # unset by default
    v = copy.deepcopy(values)
    v["data"]["userStore"] = {
        "userPrefix": "s3://roman-work/users/",
        "teamPrefix": "s3://roman-work/teams/",
    }
    env = singleuser_environment(v)
    assert env["ROMAN_USER_STORE_URL"] == "s3://roman-work/users/{username}/"
    assert env["ROMAN_TEAM_STORE_URL"] == "s3://roman-work/teams/"
