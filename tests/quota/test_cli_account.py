"""``roman-platform quota`` and ``platform_lib.account`` against the running service."""

from __future__ import annotations

import datetime as dt

import pytest

from platform_lib import account


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run ``roman-platform quota ...`` in this process (the same main() the console script runs)."""
    from platform_lib.cli import main

    def run(qp, user: str, *args: str) -> Result:
        monkeypatch.setenv("ROMAN_QUOTA_URL", qp.quota)
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", qp.token(user))
        capsys.readouterr()
        code = main(["quota", *args])
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


def test_cli_operator_flow(quota_platform, cli):
    qp = quota_platform
    r = cli(qp, "admin", "create-team", "cli-team", "--description", "made by the CLI")
    assert r.returncode == 0, r.stderr
    end = (dt.date.today() + dt.timedelta(days=20)).isoformat()
    r = cli(qp, "admin", "allocate", "--team", "cli-team", "--core-hours", "10", "--end", end)
    assert r.returncode == 0 and '"core_hours": 10.0' in r.stdout, r.stderr
    assert cli(qp, "admin", "add-member", "cli-team", "frank", "--admin").returncode == 0
    r = cli(qp, "frank", "team", "cli-team")
    assert r.returncode == 0 and '"can_admin": true' in r.stdout
    r = cli(qp, "frank", "grant", "frank", "consortium")
    assert r.returncode == 1 and "403" in r.stderr and "platform admins" in r.stderr
    r = cli(qp, "admin", "allocate", "--user", "frank", "--core-hours", "-1", "--end", end)
    assert r.returncode == 1 and "400" in r.stderr
    r = cli(qp, "admin", "usage", "--csv")
    assert r.returncode == 0 and r.stdout.startswith("user,team,core_hours,gpu_hours")
    r = cli(qp, "admin", "audit", "--limit", "3")
    assert r.returncode == 0 and '"action": "add_member"' in r.stdout


def test_account_from_a_notebook_environment(quota_platform, monkeypatch):
    qp = quota_platform
    monkeypatch.setenv("ROMAN_QUOTA_URL", qp.quota)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", qp.token("frank"))
    a = account.account()
    assert a.name == "frank" and a.tier == "entry"
    assert a.remaining_core_hours is not None and a.renewal_date is not None
    assert "frank · tier entry" in a.summary()
    assert "team cli-team" in account.remaining() or account.teams() == []
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "not-a-token")
    with pytest.raises(account.AccountError) as e:
        account.account()
    assert e.value.status == 403


def test_account_without_configuration_says_what_is_missing(monkeypatch):
    monkeypatch.delenv("ROMAN_QUOTA_URL", raising=False)
    with pytest.raises(account.AccountError, match="ROMAN_QUOTA_URL"):
        account.QuotaClient(token="x")
