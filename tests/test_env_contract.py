"""The environment-variable contract has one home, :mod:`platform_lib.env_contract`.

Python names a ``ROMAN_*`` variable through the module's constants, never as a string literal
(an AST walk of ``hub_config`` and ``platform_lib``: docstrings and help texts may mention a
name, a string that *is* a name may not); the Helm chart and the image Dockerfiles cannot import
Python, so every ``ROMAN_*`` name they write must be one of the module's.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from platform_lib import env_contract

REPO = Path(__file__).resolve().parent.parent
NAME = re.compile(r"ROMAN_[A-Z0-9_]+")
HOME = REPO / "platform_lib" / "env_contract.py"

#: files still naming variables by literal, each with the change that removes it
PENDING: dict[str, str] = {}

#: strings that look like a variable but are not one
NOT_VARIABLES: dict[str, str] = {
    "ROMAN_COLLECTION": "platform_lib.data.mast's MAST collection constant, named in __all__",
}


def _literal_names(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and NAME.fullmatch(node.value)
        and node.value not in NOT_VARIABLES
    ]


def _python_files() -> list[Path]:
    files = []
    for package in ("hub_config", "platform_lib"):
        files += sorted((REPO / package).rglob("*.py"))
    return [f for f in files if f != HOME]


def test_python_names_variables_through_the_contract():
    found = []
    for path in _python_files():
        rel = path.relative_to(REPO).as_posix()
        if rel in PENDING:
            continue
        found += [f"{rel}:{line}: {value!r}" for line, value in _literal_names(path)]
    assert not found, (
        "ROMAN_* variables named by string literal; use platform_lib.env_contract:\n"
        + "\n".join(found)
    )


def test_pending_files_exist_and_still_need_the_exemption():
    """An exemption that no longer exempts anything is removed, not kept as a blind spot."""
    for rel, why in PENDING.items():
        path = REPO / rel
        if not path.exists():
            pytest.fail(f"{rel} is gone: drop it from PENDING ({why})")
        assert _literal_names(path), f"{rel} names no variable by literal: drop it from PENDING"


def test_the_contract_module_defines_each_name_once():
    names = [value for _line, value in _literal_names(HOME)]
    assert len(names) == len(set(names)), "a variable defined twice in env_contract"
    assert set(names) == env_contract.ALL
    assert not (env_contract.USER_SERVER & env_contract.HUB)
    assert not (env_contract.IMAGE & env_contract.HUB)
    for name in env_contract.__all__:
        assert hasattr(env_contract, name), name


def _chart_and_image_sources() -> list[Path]:
    chart = REPO / "helm" / "roman-platform"
    files = sorted((chart / "templates").rglob("*")) + [chart / "values.yaml"]
    files += sorted((REPO / "images").glob("*/Dockerfile"))
    return [f for f in files if f.is_file()]


def test_chart_and_images_use_only_the_contract_names():
    sources = _chart_and_image_sources()
    assert len(sources) > 10, sources  # the scan reads the chart, not an empty folder
    seen: set[str] = set()
    unknown = []
    for path in sources:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for name in NAME.findall(line):
                seen.add(name)
                if name not in env_contract.ALL:
                    unknown.append(f"{path.relative_to(REPO)}:{number}: {name}")
    assert not unknown, "ROMAN_* names not in platform_lib.env_contract:\n" + "\n".join(unknown)
    # the chart sets the hub's and the servers' central variables
    assert {env_contract.POLICY_FILE, env_contract.QUOTA_DB_URL, env_contract.DATA_URL} <= seen
