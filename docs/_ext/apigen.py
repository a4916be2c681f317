"""The API reference of ``platform_lib``, generated at every build from the package itself.

One page per public module (every module and subpackage whose name has no leading underscore,
found by walking the package, so a new module is documented without editing the docs). A
package's page shows its docstring, a table of its public names (``__all__``) linking to where
each is defined, and its modules; a module's page documents what it defines (autodoc). The
pages go to ``docs/api/`` (git-ignored) and are rewritten only when their text changes, so an
incremental build stays incremental.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType

from sphinx.application import Sphinx
from sphinx.util import logging

log = logging.getLogger(__name__)

PACKAGE = "platform_lib"
OUT = "api"
# The CLI's own modules are documented by the CLI reference (docs/cli.md); their Python
# functions (``register``, the handlers) are plumbing, not API.
SKIP_SUFFIXES = (".cli",)


def public_modules(package: str = PACKAGE) -> list[str]:
    """Every public module of ``package``, itself first, in import-path order."""
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=package + "."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts) or info.name.endswith(SKIP_SUFFIXES):
            continue
        names.append(info.name)
    return sorted(names)


def _title(text: str) -> str:
    return f"{text}\n{'=' * len(text)}\n"


def _defined_in(module: ModuleType, name: str, submodules: list[str]) -> str | None:
    """The dotted path where ``module.name`` is documented: its defining module for functions
    and classes, else the first submodule holding the same object."""
    obj = getattr(module, name)
    home = getattr(obj, "__module__", None)
    if (inspect.isfunction(obj) or inspect.isclass(obj)) and home and home.startswith(PACKAGE):
        return f"{home}.{obj.__qualname__}"
    for sub in submodules:
        mod = importlib.import_module(sub)
        if vars(mod).get(name) is obj:
            return f"{sub}.{name}"
    return None


def module_page(name: str, all_modules: list[str]) -> str:
    module = importlib.import_module(name)
    children = [m for m in all_modules if m.rpartition(".")[0] == name]
    lines = [_title(name)]
    if not hasattr(module, "__path__"):
        lines += [
            f".. automodule:: {name}",
            "   :members:",
            "   :undoc-members:",
            "   :ignore-module-all:",
            "   :show-inheritance:",
            "",
        ]
        return "\n".join(lines)
    # a package: its docstring, its public names, its modules
    lines += [f".. automodule:: {name}", "   :no-members:", ""]
    exported = list(getattr(module, "__all__", []))
    below = [m for m in all_modules if m.startswith(name + ".")]
    # dict: an alias (``data.open = open_product``) lists its target once
    targets = list(dict.fromkeys(t for t in (_defined_in(module, n, below) for n in exported) if t))
    if targets:
        lines += ["Public names", "------------", "", ".. autosummary::", "   :nosignatures:", ""]
        # relative to the package (the current module once automodule has run)
        lines += [f"   ~{t.removeprefix(name + '.')}" for t in targets]
        lines.append("")
    if children:
        lines += ["Modules", "-------", "", ".. toctree::", "   :maxdepth: 1", ""]
        lines += [f"   {c}" for c in children]
        lines.append("")
    return "\n".join(lines)


def index_page(top_level: list[str]) -> str:
    lines = [
        _title("API reference"),
        f"Generated from the ``{PACKAGE}`` package at every build (``docs/_ext/apigen.py``).",
        "In a notebook, each subpackage's public names import from the subpackage itself, e.g.",
        "``from platform_lib.data import search, open_product``.",
        "",
        ".. autosummary::",
        "",
    ]
    lines += [f"   {m}" for m in top_level]
    lines += ["", ".. toctree::", "   :hidden:", ""]
    lines += [f"   {m}" for m in top_level]
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def generate(app: Sphinx) -> None:
    out = Path(app.srcdir) / OUT
    out.mkdir(exist_ok=True)
    modules = public_modules()[1:]  # the root package has no API of its own
    wanted = {f"{m}.rst" for m in modules} | {"index.rst"}
    for stale in out.glob("*.rst"):
        if stale.name not in wanted:
            stale.unlink()
    top_level = [m for m in modules if m.count(".") == 1]
    _write(out / "index.rst", index_page(top_level))
    for m in modules:
        _write(out / f"{m}.rst", module_page(m, modules))
    log.info("apigen: %d API pages for %s", len(modules), PACKAGE)


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", generate)
    return {"parallel_read_safe": True, "version": "1"}
