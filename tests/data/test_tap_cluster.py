"""The chart's TAP pods find their database and DaCHS from the environment, or say what is missing.

(What the commands do in the tap image is tested for real in tests/images/test_tap_image.py.)
"""

from __future__ import annotations

import pytest

from hub_config.tap.cluster import attach_from_env, database_from_url, main
from hub_config.tap.schema import TapError

CLUSTER = {
    "ROMAN_TAP_DACHS_URL": "http://rp-tap-dachs:8080",
    "ROMAN_TAP_PG_URL": "postgresql://postgres@rp-tap-postgresql:5432/gavo",
    "ROMAN_TAP_PG_PASSWORD": "pw",
    "ROMAN_TAP_SECRET": "s" * 32,
}


def test_the_database_url():
    assert database_from_url("postgresql://dachs@db.example.org:6432/obscore") == {
        "host": "db.example.org",
        "port": 6432,
        "user": "dachs",
        "dbname": "obscore",
    }
    assert database_from_url("postgres://db")["port"] == 5432
    with pytest.raises(TapError, match="not a PostgreSQL URL"):
        database_from_url("mysql://u@db/x")
    with pytest.raises(TapError, match="must not hold the password"):
        database_from_url("postgresql://u:secret@db/x")


def test_attach_in_the_cluster_and_on_one_machine(tmp_path):
    tap = attach_from_env(CLUSTER)
    assert tap.url == "http://rp-tap-dachs:8080/tap"
    assert tap.dsn() == ("host=rp-tap-postgresql port=5432 dbname=gavo user=postgres password=pw")
    assert tap.password_for("alice") == attach_from_env(CLUSTER).password_for("alice")
    local = attach_from_env(
        {
            "ROMAN_TAP_ROOT": str(tmp_path),
            "ROMAN_TAP_PORT": "8111",
            "ROMAN_TAP_PG_PORT": "5111",
            "ROMAN_TAP_SECRET": "s" * 32,
        }
    )
    assert local.url == "http://127.0.0.1:8111/tap"
    assert "host=127.0.0.1 port=5111" in local.dsn()
    # the publisher holds no secret: it writes rows, it never speaks for a user
    publisher = attach_from_env(
        {k: v for k, v in CLUSTER.items() if k != "ROMAN_TAP_SECRET"}, secret=False
    )
    assert publisher.pg_host == "rp-tap-postgresql"


@pytest.mark.parametrize(
    "drop,missing",
    [
        ("ROMAN_TAP_SECRET", "ROMAN_TAP_SECRET"),
        ("ROMAN_TAP_PG_PASSWORD", "ROMAN_TAP_PG_PASSWORD"),
    ],
)
def test_what_is_missing_is_named(drop, missing):
    with pytest.raises(TapError, match=missing):
        attach_from_env({k: v for k, v in CLUSTER.items() if k != drop})
    with pytest.raises(TapError, match="ROMAN_TAP_ROOT"):
        attach_from_env({"ROMAN_TAP_SECRET": "x"})


def test_commands_refuse_a_missing_setting_with_one_line(monkeypatch, capsys):
    for key in [*CLUSTER, "ROMAN_DATA_URL"]:
        monkeypatch.delenv(key, raising=False)
    assert main(["postgres", "--data", "/nonexistent"]) == 1
    assert "ROMAN_TAP_PG_PASSWORD is not set" in capsys.readouterr().err
    assert main(["dachs"]) == 1
    assert "ROMAN_TAP_SECRET is not set" in capsys.readouterr().err
    assert main(["publish", "--once"]) == 1
    assert "ROMAN_DATA_URL is not set" in capsys.readouterr().err
