"""The quota package's layer rule, read from the source: handlers -> services -> storage.

Each layer may import the ones below it (and the shared ``settings``/``errors``), never one above;
imports under ``if TYPE_CHECKING:`` are for annotations and do not count. And no quota module
reaches into the local platform's modules or the notebook side's account view (the shared pieces
live in neutral modules: ``hub_config.naming``, ``platform_lib.quota_client``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

QUOTA = Path(__file__).resolve().parents[2] / "hub_config" / "quota"
PKG = "hub_config.quota"

#: What each layer must not import (module prefixes).
ABOVE = {
    "storage": [f"{PKG}.services", f"{PKG}.handlers", f"{PKG}.service", f"{PKG}.background"],
    "services": [f"{PKG}.handlers", f"{PKG}.service", f"{PKG}.background", f"{PKG}.cli"],
    "handlers": [f"{PKG}.service", f"{PKG}.background", f"{PKG}.cli"],
}
NEVER = ["hub_config.local", "platform_lib.account"]


def _module(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, root: Path = QUOTA) -> list[tuple[int, str]]:
    """(line, imported module) of every import outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(), str(path))
    here = _module(path, root)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


def _violations(path: Path, root: Path = QUOTA) -> list[str]:
    rel = path.relative_to(root)
    banned = list(NEVER)
    if len(rel.parts) > 1:
        banned += ABOVE.get(rel.parts[0], [])
    bad = []
    for line, mod in imports(path, root):
        for b in banned:
            if mod == b or mod.startswith(b + "."):
                bad.append(f"{rel}:{line} imports {mod}")
    return sorted(set(bad))


FILES = sorted(p for p in QUOTA.rglob("*.py") if "versions" not in p.parts)


def test_the_layers_exist_and_are_found():
    layers = {p.relative_to(QUOTA).parts[0] for p in FILES if len(p.relative_to(QUOTA).parts) > 1}
    assert {"handlers", "services", "storage"} <= layers
    assert len(FILES) > 20


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(QUOTA)))
def test_no_import_points_up(path):
    assert _violations(path) == []


def test_the_check_catches_an_upward_import(tmp_path):
    """The rule itself can fail: a storage module importing a service, a service importing a
    handler and a quota module importing the local platform are each reported."""
    fake = tmp_path / "hub_config" / "quota"
    for layer, source in [
        ("storage", "from hub_config.quota.services import ledger\n"),
        ("services", "from ..handlers import base\n"),
        ("handlers", "import hub_config.local.spawner\n"),
    ]:
        (fake / layer).mkdir(parents=True)
        (fake / layer / "bad.py").write_text(
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from hub_config.quota.service import QuotaApp\n" + source
        )
    found = {layer: _violations(fake / layer / "bad.py", fake) for layer in ABOVE}
    assert found == {
        "storage": [
            "storage/bad.py:4 imports hub_config.quota.services",
            "storage/bad.py:4 imports hub_config.quota.services.ledger",
        ],
        "services": [
            "services/bad.py:4 imports hub_config.quota.handlers",
            "services/bad.py:4 imports hub_config.quota.handlers.base",
        ],
        "handlers": ["handlers/bad.py:4 imports hub_config.local.spawner"],
    }
