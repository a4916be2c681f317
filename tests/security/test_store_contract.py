"""The ROMAN_USER_STORE_URL / ROMAN_TEAM_STORE_URL contract the spawner gives each server."""

from __future__ import annotations

from hub_config.local.spawner import store_urls


def test_user_and_team_prefixes_next_to_the_survey():
    env = store_urls("s3://roman/survey", "alice", "/h/alice")
    assert env == {"ROMAN_USER_STORE_URL": "s3://roman/users/alice/",
                   "ROMAN_TEAM_STORE_URL": "s3://roman/teams/"}


def test_a_hostile_username_stays_one_path_component():
    env = store_urls("s3://roman", "../bob", "/h/x")
    assert env["ROMAN_USER_STORE_URL"] == "s3://roman/users/%2E.%2Fbob/"
    assert "/users/../" not in env["ROMAN_USER_STORE_URL"]


def test_folder_survey_uses_the_home():
    env = store_urls("/data/survey", "alice", "/h/alice")
    assert env["ROMAN_USER_STORE_URL"] == "/h/alice/store/"
