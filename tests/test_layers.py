"""The layer rules of the code base, checked on its source (a small AST walk, no imports run).

Every ``import`` counts, the ones inside functions too: a lazy import still ties two modules
together, it only hides the cycle until the function runs.

Rules are rows of :data:`FORBIDDEN` (who may not import whom, and why), :data:`FOUNDATIONS`
(modules at the bottom of a layer stack and the only project modules each may import) and
packages listed in :data:`ACYCLIC` (no import cycle between their modules). To add a rule, add
a row; the tests below need no change. Only rules that hold are listed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("platform_lib", "hub_config")


@dataclass(frozen=True)
class Forbidden:
    """Modules under ``importer`` must not import anything under ``imported``."""

    importer: str
    imported: str
    reason: str


#: who may not import whom (dotted prefixes: a package covers its modules)
FORBIDDEN: tuple[Forbidden, ...] = (
    Forbidden(
        "platform_lib",
        "hub_config",
        "the notebook image ships platform_lib without the hub; the hub may use the library, "
        "never the other way round",
    ),
)

_BOTH_MODES = (
    "runs in the one-machine and the Kubernetes set-up alike; the one-machine set-up "
    "(hub_config.local) is a layer above it"
)
FORBIDDEN += (
    Forbidden("hub_config.quota", "hub_config.local", "the quota service " + _BOTH_MODES),
    Forbidden("hub_config.spawner", "hub_config.local", "the spawner " + _BOTH_MODES),
    Forbidden("hub_config.auth", "hub_config.local", "the authenticator " + _BOTH_MODES),
    Forbidden(
        "hub_config.modes.common",
        "hub_config.local",
        "the wiring both set-ups share " + _BOTH_MODES,
    ),
    Forbidden(
        "hub_config.modes.kubernetes",
        "hub_config.local",
        "the Kubernetes set-up runs in the cluster, where the one-machine package has nothing to do",
    ),
    Forbidden(
        "hub_config.chart_values",
        "hub_config.local",
        "the chart's values become the platform settings (hub_config.settings, neutral) in the cluster",
    ),
    Forbidden("hub_config.settings", "hub_config.local", "the settings model " + _BOTH_MODES),
    Forbidden(
        "hub_config.tap",
        "hub_config.local",
        "the TAP service " + _BOTH_MODES + "; the chart's tap image runs it in pods of its own",
    ),
    Forbidden(
        "hub_config.tap",
        "hub_config.modes",
        "the TAP service runs in its own processes and pods, not in the hub's config: the mode "
        "modules register its proxy as a hub service, never the other way round",
    ),
    Forbidden(
        "hub_config.processes",
        "hub_config.local",
        "the child-process manager runs the TAP service's DaCHS (hub_config.tap.service) in "
        "both set-ups; the supervisor is a layer above it",
    ),
    Forbidden(
        "hub_config.quota",
        "hub_config.oidc_dev",
        "the quota service reads the deployment's identity provider through the hub in both "
        "set-ups; the development provider's demo accounts are seeded by hub_config.local.demo_teams",
    ),
    Forbidden(
        "hub_config.policy",
        "hub_config",
        "the tier policy is the spine the hub reads; it reads nothing of the hub",
    ),
)

#: hub_config.gateway: only its ``local`` module reads the one-machine set-up, and only the mode
#: modules (``local``, ``kubernetes``) know the quota service, whose check they inject
GATEWAY_SHARED = (
    "hub_config.gateway.options",
    "hub_config.gateway.limits",
    "hub_config.gateway.environment",
    "hub_config.gateway.configure",
    "hub_config.gateway.auth",
)
FORBIDDEN += tuple(
    Forbidden(module, "hub_config.local", "the gateway's " + _BOTH_MODES)
    for module in (*GATEWAY_SHARED, "hub_config.gateway.kubernetes")
) + tuple(
    Forbidden(
        module,
        "hub_config.quota",
        "the quota check reaches the gateway injected (TierLimitsMixin.cluster_checks, set by "
        "the mode's config), as spawn_checks reach the spawner",
    )
    for module in GATEWAY_SHARED
)

#: module -> the only project modules it may import (the bottom of the notebook-side layers:
#: one home per concept that every subpackage shares, so none of them may reach up)
FOUNDATIONS: dict[str, frozenset[str]] = {
    "platform_lib.env_contract": frozenset(),
    "platform_lib.instrument": frozenset(),
    "platform_lib.locations": frozenset({"platform_lib.env_contract"}),
    "platform_lib.data.query": frozenset(),
    "platform_lib.data.store": frozenset({"platform_lib.env_contract"}),
    "platform_lib.data.transfer": frozenset(
        {"platform_lib.data.store", "platform_lib.env_contract"}
    ),
    "platform_lib.data.refset": frozenset({"platform_lib.data.transfer"}),
    "platform_lib.simulate.cutout": frozenset(
        {"platform_lib.instrument", "platform_lib.simulate.errors"}
    ),
}

#: packages whose modules must not import each other in a cycle
ACYCLIC: tuple[str, ...] = ("platform_lib", "hub_config")

#: packages whose *parts* (each subpackage, or top-level module, directly below the package,
#: taken as one node) must not import each other in a cycle either: a module-level check misses
#: ``data.a -> simulate.b -> data.c``, which still ties the two subpackages together. The
#: notebook side's order, bottom up: the foundations (env_contract, instrument, locations, ...),
#: compute (Dask), data, simulate, calibrate and catalogs, then sample (the day-one survey, made
#: with simulate and written with catalogs' writers). The hub side's, bottom up: policy, then
#: settings, naming, environments, chart_values and processes (child processes without
#: orphans), then auth, spawner, quota, oidc_dev (the development IdP) and tap (the TAP/ObsCore
#: service: DaCHS, its proxy, the index publisher; it runs in the chart's pods too, so it reads
#: nothing of local or modes), then local (the one-machine set-up: supervisor, SeaweedFS, the
#: TAP and IdP components, the demo teams; it starts the gateway server by its config file's
#: path, imports nothing of it), then gateway (its ``local`` module reads
#: ``local.s3_identities``) and modes, then jupyterhub_config. Entry points (:func:`is_entry_point`) are left out: they sit
#: above every part.
ACYCLIC_PARTS: tuple[str, ...] = ("platform_lib", "hub_config")


def is_entry_point(module: str) -> bool:
    """A command-line module (``<package>.cli``, ``platform_lib.cli``): the top layer.

    Each subpackage's ``cli`` registers that area's ``roman-platform`` subcommands, so it may use
    any part (``roman-platform data sample`` runs :mod:`platform_lib.sample`); nothing but another
    entry point may import one (:func:`test_nothing_imports_an_entry_point`).
    """
    return module.rsplit(".", 1)[-1] == "cli"


#: a module longer than this states why in its docstring, on a line starting ``Size:``
MAX_LINES = 400

#: modules over :data:`MAX_LINES` without a ``Size:`` line, each with the reason it may be, for
#: now (temporary: an entry is removed when its module is split or states its reason)
SIZE_ALLOWED: dict[str, str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "files" in path.relative_to(REPO).parts:  # helm-style data folders, not code
                continue
            found[_module_name(path)] = path
    return found


def _imported_names(
    module: str, is_package: bool, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]
) -> list[str]:
    """Dotted names an import statement reaches.

    ``from a import b`` reaches module ``a.b`` when there is one (the package ``a`` only runs
    first, as for any of its modules), else the name ``b`` defined in ``a``.
    """
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        origin = ".".join(base + ([node.module] if node.module else []))
    else:
        origin = node.module or ""
    return [
        f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules else origin
        for alias in node.names
    ]


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (anywhere in its source)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for name in _imported_names(module, is_package, node, modules):
                # the deepest project module the name lies in (a.b.func -> a.b)
                while name and name not in modules and "." in name:
                    name = name.rsplit(".", 1)[0]
                if name in modules and name != module:
                    targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]], within: str) -> list[list[str]]:
    """Strongly connected groups (more than one module) among the modules under ``within``."""
    nodes = [m for m in graph if m == within or m.startswith(within + ".")]
    inside = set(nodes)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(root: str) -> None:
        # Tarjan's algorithm, iterative (bounded by the number of edges)
        work = [(root, iter(sorted(graph[root] & inside)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            advanced = False
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt] & inside))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))

    for node in nodes:
        if node not in index:
            visit(node)
    return groups


def part_graph(graph: dict[str, set[str]], within: str) -> dict[str, set[str]]:
    """The import graph between the parts directly below ``within`` (entry points left out).

    A part is ``within.<name>``: a subpackage with all its modules, or a top-level module.
    """
    depth = within.count(".") + 2

    def part(module: str) -> str:
        return ".".join(module.split(".")[:depth])

    parts: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if not _under(module, within) or module == within or is_entry_point(module):
            continue
        edges = parts.setdefault(part(module), set())
        for target in targets:
            if _under(target, within) and target != within and not is_entry_point(target):
                if part(target) != part(module):
                    edges.add(part(target))
    for edges in list(parts.values()):
        for target in edges:
            parts.setdefault(target, set())
    return parts


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_walk_sees_module_and_function_level_imports(graph) -> None:
    # a module-level relative import and a function-level one (inside _find)
    assert "platform_lib.data.store" in graph["platform_lib.data.search"]
    assert "platform_lib.data.search" in graph["platform_lib.data.psf"]
    # an absolute import of a package's module
    assert "platform_lib.compute" in graph["platform_lib.data.psf"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    toy = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert cycles(toy, "p") == [["p.a", "p.b", "p.c"]]


@pytest.mark.parametrize("package", ACYCLIC)
def test_no_import_cycles(graph, package: str) -> None:
    found = cycles(graph, package)
    assert not found, f"import cycles in {package}: " + "; ".join(" <-> ".join(g) for g in found)


def test_the_part_graph_joins_a_subpackage_into_one_node() -> None:
    toy = {
        "p": set(),
        "p.a.x": {"p.b.y"},
        "p.b.y": {"p.c"},
        "p.c": {"p.a.z"},
        "p.a.z": set(),
        "p.a.cli": {"p.b.y"},
    }
    parts = part_graph(toy, "p")
    assert parts == {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}}
    # no module cycle, but the parts a -> b -> c -> a are one
    assert cycles(toy, "p") == [] and cycles(parts, "p") == [["p.a", "p.b", "p.c"]]


@pytest.mark.parametrize("package", ACYCLIC_PARTS)
def test_no_import_cycles_between_parts(graph, package: str) -> None:
    parts = part_graph(graph, package)
    found = cycles(parts, package)
    detail = [
        f"{module} imports {target}"
        for group in found
        for module, targets in sorted(graph.items())
        if not is_entry_point(module)
        for target in sorted(targets)
        if not is_entry_point(target)
        and any(_under(module, a) for a in group)
        and any(_under(target, b) for b in group)
        and not any(_under(module, a) and _under(target, a) for a in group)
    ]
    assert not found, (
        f"import cycles between the parts of {package}: "
        + "; ".join(" <-> ".join(g) for g in found)
        + "\n"
        + "\n".join(detail)
    )


def test_nothing_imports_an_entry_point(graph) -> None:
    bad = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if not is_entry_point(module)
        for target in targets
        if is_entry_point(target)
    )
    assert not bad, "command-line modules are the top layer:\n" + "\n".join(bad)


@pytest.mark.parametrize("module", sorted(FOUNDATIONS))
def test_foundations_import_only_what_they_may(graph, module: str) -> None:
    assert module in graph, f"{module} is listed in FOUNDATIONS but does not exist"
    extra = sorted(graph[module] - FOUNDATIONS[module])
    assert not extra, f"{module} is a foundation module and may not import {extra}"


@pytest.mark.parametrize("rule", FORBIDDEN, ids=lambda r: f"{r.importer}-not-{r.imported}")
def test_forbidden_imports(graph, rule: Forbidden) -> None:
    bad = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if _under(module, rule.importer)
        for target in targets
        if _under(target, rule.imported)
    )
    assert not bad, f"{rule.reason}:\n" + "\n".join(bad)


def test_every_rule_names_real_modules(graph) -> None:
    # a rule whose importer (or imported package) does not exist would pass without checking
    # anything, e.g. after a package is renamed
    stale = [
        f"{r.importer} -> {r.imported}"
        for r in FORBIDDEN
        if not any(_under(m, r.importer) for m in graph)
        or not any(_under(m, r.imported) for m in graph)
    ]
    assert not stale, "rules about modules that do not exist: " + "; ".join(stale)


def test_the_gateway_rules_name_real_modules(graph) -> None:
    # a rule about a module that does not exist would pass without checking anything
    gateway_rules = [r for r in FORBIDDEN if r.importer.startswith("hub_config.gateway.")]
    assert gateway_rules and all(r.importer in graph for r in gateway_rules)


def _oversized() -> list[tuple[str, int, bool]]:
    """(path, lines, states a reason) of every module over :data:`MAX_LINES`."""
    found = []
    for path in _modules().values():
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            reason = any(line.strip().startswith("Size:") for line in doc.splitlines())
            found.append((str(path.relative_to(REPO)), lines, reason))
    return sorted(found)


def test_long_modules_state_why() -> None:
    bad = [
        f"{path} ({lines} lines)"
        for path, lines, reason in _oversized()
        if not reason and path not in SIZE_ALLOWED
    ]
    assert not bad, (
        f"modules over {MAX_LINES} lines: split them by concern, or say why not on a "
        "'Size:' line of the module docstring:\n" + "\n".join(bad)
    )


def test_the_size_allowances_are_still_needed() -> None:
    # an allowance for a module that was split (or now states its reason) would hide the next one
    over = {path for path, _, reason in _oversized() if not reason}
    stale = sorted(set(SIZE_ALLOWED) - over)
    assert not stale, f"remove these from SIZE_ALLOWED: {stale}"
