"""Bad configuration and taken ports: one clear line, exit code 2, nothing created or started."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from hub_config.local import cli as up_cli
from hub_config.local.config import ConfigError, PlatformConfig, load_config


def run_up(tmp_path: Path, config_text: str, capsys: pytest.CaptureFixture[str]) -> Result:
    """``roman-platform up`` in this process (its own subcommand only: fast, same code path)."""
    cfg = tmp_path / "platform.yaml"
    cfg.write_text(config_text)
    parser = argparse.ArgumentParser(prog="roman-platform")
    up_cli.register(parser.add_subparsers())
    args = parser.parse_args(["up", "--config", str(cfg), "--state-dir", str(tmp_path / "state")])
    capsys.readouterr()
    code = args.func(args)
    out = capsys.readouterr()
    return Result(code, out.out, out.err)


class Result(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def test_the_real_command_reports_a_bad_field(tmp_path):
    """The installed entry point, as a subprocess: exit code 2 and one line on stderr."""
    cfg = tmp_path / "platform.yaml"
    cfg.write_text("ports:\n  http: eighty\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "platform_lib.cli",
            "up",
            "--config",
            str(cfg),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and ": ports.http: " in lines[0], proc.stderr
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("text", "field", "why"),
    [
        ("ports:\n  http: eighty\n", "ports.http", "valid integer"),
        ("ports:\n  http: 70000\n", "ports.http", "less than or equal to 65535"),
        ("prots:\n  http: 8000\n", "prots", "unknown setting"),
        ("demo:\n  users: [Alice Smith]\n", "demo.users.0", "should match pattern"),
        ("demo:\n  password: short\n", "demo.password", "at least 8"),
        ("gateway:\n  worker_memory: lots\n", "gateway.worker_memory", "should match pattern"),
        ("ports: [8000]\n", "ports", "valid dictionary"),
    ],
)
def test_malformed_config_is_one_line_naming_the_field(tmp_path, capsys, text, field, why):
    proc = run_up(tmp_path, text, capsys)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert "\n" not in err, f"expected one line, got:\n{err}"
    assert f": {field}: " in err and why in err, err
    assert "platform.yaml" in err
    assert not (tmp_path / "state").exists(), "a refused start must not create the state folder"


def test_invalid_yaml_is_one_line(tmp_path, capsys):
    proc = run_up(tmp_path, "ports: {http: 8000\n", capsys)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert "\n" not in err and "not valid YAML" in err and "line" in err, err


def test_missing_config_file_named_on_the_command_line(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="roman-platform")
    up_cli.register(parser.add_subparsers())
    args = parser.parse_args(["up", "--config", str(tmp_path / "nope.yaml")])
    assert args.func(args) == 2
    assert "nope.yaml: configuration file not found" in capsys.readouterr().err


def test_port_in_use_names_the_port_and_the_setting(tmp_path, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = run_up(
            tmp_path,
            f"ports:\n  http: 0\n  proxy_api: 0\n  hub: {port}\n"
            "  gateway: 0\n  gateway_scheduler: 0\n",
            capsys,
        )
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert "\n" not in err
    assert f"port {port} on 127.0.0.1 is already in use" in err and "ports.hub" in err, err
    assert not (tmp_path / "state").exists()


def test_same_port_for_two_settings_is_refused(tmp_path, capsys):
    proc = run_up(tmp_path, "ports:\n  http: 18123\n  hub: 18123\n", capsys)
    assert proc.returncode == 2
    assert "ports.http and ports.hub" in proc.stderr and "18123" in proc.stderr


def test_defaults_work_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(None)
    assert config == PlatformConfig()
    assert config.ports.http == 8000 and config.demo.users == ["alice", "bob"]


def test_empty_file_means_defaults(tmp_path):
    (tmp_path / "p.yaml").write_text("# nothing set\n")
    assert load_config(tmp_path / "p.yaml") == PlatformConfig()


def test_config_error_is_a_value_error_with_the_path(tmp_path):
    (tmp_path / "p.yaml").write_text("log_level: LOUD\n")
    with pytest.raises(ConfigError, match=r"p\.yaml: log_level: "):
        load_config(tmp_path / "p.yaml")


def test_documented_platform_yaml_is_valid_and_matches_the_defaults(tmp_path):
    """docs/local-platform.md shows every setting with its default; it must not drift."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "local-platform.md").read_text()
    block = doc.split("## Configuration", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "documented.yaml").write_text(block)
    documented = load_config(tmp_path / "documented.yaml", required=True)
    defaults = PlatformConfig()
    assert documented.model_dump(exclude={"state_dir"}) == defaults.model_dump(
        exclude={"state_dir"}
    )
    assert set(PlatformConfig.model_fields) <= {
        line.split(":", 1)[0] for line in block.splitlines() if line and not line[0].isspace()
    }, "a top-level setting is missing from the documented example"


def test_duplicate_key_in_platform_yaml_is_refused(tmp_path, capsys):
    proc = run_up(tmp_path, "ports:\n  http: 8000\n  http: 8001\n", capsys)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert (
        "\n" not in err and "duplicate key 'http' (first on line 2)" in err and "line 3" in err
    ), err
    assert not (tmp_path / "state").exists()


def _policy_text(**gateway_changes: object) -> str:
    """The bundled policy with some of the entry tier's gateway limits replaced."""
    import yaml

    from hub_config.policy import DEFAULT_POLICY_PATH

    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    data["tiers"]["entry"]["gateway"].update(gateway_changes)
    return yaml.safe_dump(data, sort_keys=False)


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        (
            {"max_total_workers": 2, "max_workers": 4},
            "max_total_workers (2) is below max_workers (4)",
        ),
        ({"max_total_cores": 1.0, "max_cores_per_cluster": 4.0}, "max_total_cores (1.0) is below"),
        ({"max_total_memory_gib": 1.0}, "max_total_memory_gib (1.0) is below"),
        ({"worker_cores": {"min": 8, "max": 8}}, "no worker fits"),
        ({"max_workers": "many"}, "tiers.entry.gateway.max_workers"),
    ],
)
def test_up_refuses_an_invalid_policy_naming_the_field(tmp_path, capsys, monkeypatch, changes, why):
    """Before: ``up`` started, then every login returned 500."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(_policy_text(**changes))
    monkeypatch.setenv("ROMAN_POLICY_FILE", str(policy))
    proc = run_up(tmp_path, "", capsys)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert "\n" not in err and "tiers.entry.gateway" in err and why in err, err
    assert not (tmp_path / "state").exists()


def test_duplicate_key_in_the_policy_is_refused(tmp_path, monkeypatch):
    from hub_config.policy import PolicyError, load_policy

    text = _policy_text().replace(
        "default_tier: entry\n", "default_tier: entry\ndefault_tier: team\n", 1
    )
    assert text.count("default_tier:") == 2
    (tmp_path / "policy.yaml").write_text(text)
    with pytest.raises(PolicyError, match="duplicate key 'default_tier'"):
        load_policy(tmp_path / "policy.yaml")


def test_yaml_alias_bomb_in_a_config_is_refused(tmp_path, capsys):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join(['*a' if i == 1 else f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)
    )
    proc = run_up(tmp_path, bomb, capsys)
    assert proc.returncode == 2 and "alias" in proc.stderr, proc.stderr
