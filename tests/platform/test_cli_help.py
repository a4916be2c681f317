"""Issue 18: ``roman-platform --version``, and help text on every option of every subcommand."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib.metadata import version

from platform_lib.cli import PIPELINE_PACKAGES, build_parser


def _undocumented(parser: argparse.ArgumentParser, path: str) -> list[str]:
    """Every option, positional and subcommand under ``parser`` that has no help text."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in action._choices_actions}
            for name, sub in action.choices.items():
                if not helps.get(name):
                    missing.append(f"{path} {name} (subcommand)")
                missing += _undocumented(sub, f"{path} {name}")
        elif not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_option_of_every_subcommand_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    # The walk reaches the areas' subcommands (so it is not vacuously empty).
    assert {"up", "data", "simulate", "calibrate", "catalog", "quota"} <= set(sub.choices)
    assert _undocumented(parser, "roman-platform") == []


def test_the_walk_sees_an_option_without_help():
    parser = argparse.ArgumentParser()
    parser.add_subparsers().add_parser("x", help="x").add_argument("--bare")
    assert _undocumented(parser, "p") == ["p x --bare"]


def test_version_names_the_platform_and_the_pipeline():
    bare = {k: v for k, v in os.environ.items() if k not in ("ROMAN_ENVIRONMENT", "CRDS_CONTEXT")}
    out = subprocess.run(
        [sys.executable, "-m", "platform_lib.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=bare,
    ).stdout.splitlines()
    assert out[0] == f"roman-platform {version('roman-science-platform')}"
    assert out[1:4] == [f"{name} {version(name)}" for name in PIPELINE_PACKAGES]
    assert out[4] == "environment development"  # no ROMAN_ENVIRONMENT outside the platform
    out = subprocess.run(
        [sys.executable, "-m", "platform_lib.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**bare, "ROMAN_ENVIRONMENT": "2026.2", "CRDS_CONTEXT": "roman_0046.pmap"},
    ).stdout.splitlines()
    assert out[4:] == ["environment 2026.2", "CRDS context roman_0046.pmap"]
