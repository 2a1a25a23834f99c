"""The import graph of gateway/, bot/ and harness/, read with ast: no circle among modules, no module over
400 lines, and no arrow running back up docs/architecture.md's layer table.

Every ``import`` and ``from ... import`` counts, at any depth (one inside a function is an arrow too), but
for those under ``if TYPE_CHECKING:``. ``from pkg import name`` is an arrow to ``pkg.name`` when that is a
module, else to ``pkg``. A package's ``__init__`` importing its own submodules is no circle.

The KNOWN_* lists hold exactly today's offenders, so these tests fail on any new one and on any listed
one that went away (remove it then): empty lists are the goal of issue 19.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path

from gateway.config.settings import REPO_ROOT

PACKAGES = ("gateway", "bot", "harness")
MAX_LINES = 400
Graph = Mapping[str, frozenset[str]]

# Circles today, each as the set of modules one strongly connected part of the graph holds.
KNOWN_CYCLES: list[frozenset[str]] = []
# Modules over MAX_LINES today, by path from the repository root.
KNOWN_LONG: list[str] = []

# docs/architecture.md's layer table, TOP TO BOTTOM by who may import whom (the table lists its rows the
# other way round, and each row is a folder): a module may import its own layer and the layers below it. A
# module belongs to the layer with the longest prefix naming it, so the service's facade and queue worker
# (gateway/service/facade.py, queue_worker.py) sit above the collaborators beside them, and the site
# checks (which submit through a gateway they are given) between them.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("front ends", ("gateway.cli", "bot", "gateway.http")),
    ("dev stack", ("gateway.devstack",)),
    ("remote client", ("gateway.client",)),
    ("service facade", ("gateway.service.facade",)),
    ("site checks", ("gateway.sitecheck",)),
    ("queue worker", ("gateway.service.queue_worker",)),
    ("service collaborators", ("gateway.service",)),
    ("store", ("gateway.store",)),
    ("running", ("gateway.running",)),
    ("config", ("gateway.config",)),
    ("core", ("gateway.core",)),
    ("harness", ("harness",)),
]
# Modules no row of the table names: the package itself, and the probe task (data, never imported).
NOT_IN_TABLE: list[str] = ["gateway", "gateway.probe"]
# Arrows the table allows beyond "this layer and below", as (importer prefix, imported prefix).
ALLOWED_UPWARD: list[tuple[str, str]] = []
# Arrows running back up today, as (importer, imported) modules.
KNOWN_UPWARD: list[tuple[str, str]] = []
# The remote client talks to another gateway: never the service, the store or what runs jobs; the core
# and the config are all it may import. Front ends hold no database or SSH logic (tests/unit/
# test_front_end_layers.py says the same for their files' text).
CLIENT_MAY_IMPORT = ("gateway.client", "gateway.core", "gateway.config")


# -- the graph ---------------------------------------------------------------------------------------


def module_files(root: Path = REPO_ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Every module of the packages by dotted name (a package by its own name, for its __init__)."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """The import statements at any depth, but not those under ``if TYPE_CHECKING:`` (its else counts)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def _known(name: str, modules: Mapping[str, Path]) -> str | None:
    """The module ``name`` is, or the package holding it (``gateway.x.Y`` -> ``gateway.x``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The modules of ``modules`` that ``module`` (at ``path``) imports."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
            ]
        targets.update(t for name in names if (t := _known(name, modules)) is not None)
    targets.discard(module)
    return targets


@cache
def import_graph() -> Graph:
    modules = module_files()
    return {module: frozenset(imports_of(module, path, modules)) for module, path in modules.items()}


def _own_submodule(importer: str, imported: str) -> bool:
    return imported.startswith(importer + ".")


def cycles(graph: Graph) -> list[tuple[frozenset[str], list[str]]]:
    """Each strongly connected part of the graph (Tarjan) with one circle through it, as a path that ends
    where it starts; a package importing its own submodules is left out."""
    edges = {m: sorted(t for t in ts if t in graph and not _own_submodule(m, t)) for m, ts in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    parts: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            part = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                part.append(member)
                if member == node:
                    break
            if len(part) > 1:
                parts.append(sorted(part))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return [(frozenset(part), _circle_through(part, edges)) for part in sorted(parts)]


def _circle_through(part: list[str], edges: Mapping[str, list[str]]) -> list[str]:
    """The shortest path from the part's first module back to itself, inside the part."""
    start, members = part[0], set(part)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in edges[node]:
                if target == start:
                    return [*paths[node], start]
                if target in members and target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no circle in {part}")


def layer_of(module: str, layers: Sequence[tuple[str, Sequence[str]]]) -> int | None:
    """The index of the layer whose longest prefix names ``module``; None when no layer does."""
    best: tuple[int, int] | None = None  # (prefix length, layer index)
    for number, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), number)
    return None if best is None else best[1]


def _named_by(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_violations(
    graph: Graph,
    layers: Sequence[tuple[str, Sequence[str]]],
    allowed: Iterable[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """The arrows (importer, imported) running back up ``layers`` (top to bottom: a layer may import
    itself and the layers after it), but those ``allowed`` names as (importer prefix, imported prefix)."""
    allowances = list(allowed)
    found = []
    for importer, imported_all in sorted(graph.items()):
        own = layer_of(importer, layers)
        if own is None:
            continue
        for imported in sorted(imported_all):
            theirs = layer_of(imported, layers)
            if theirs is None or theirs >= own:
                continue
            if any(_named_by(importer, a) and _named_by(imported, b) for a, b in allowances):
                continue
            found.append((importer, imported))
    return found


# -- the machinery on small graphs ---------------------------------------------------------------------


def test_imports_are_read_at_any_depth_but_not_for_type_checking(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg import a\n")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\nelse:\n    import json\n"
        "def f():\n    from .sub import c\n    from . import b as _b\n"
    )
    (pkg / "b.py").write_text("from pkg.sub.c import X\nimport pkg.a\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from .. import a\nfrom ..sub import d\n")
    (pkg / "sub" / "d.py").write_text("X = 1\n")
    modules = module_files(tmp_path, ["pkg"])
    graph = {m: frozenset(imports_of(m, p, modules)) for m, p in modules.items()}
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.sub.c", "pkg.b"},
        "pkg.b": {"pkg.sub.c", "pkg.a"},
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg.a", "pkg.sub.d"},
        "pkg.sub.d": set(),
    }
    assert cycles(graph) == [(frozenset({"pkg.a", "pkg.b", "pkg.sub.c"}), ["pkg.a", "pkg.b", "pkg.a"])]


def test_cycles_leave_out_a_package_importing_its_submodules() -> None:
    graph = {"p": frozenset({"p.x"}), "p.x": frozenset({"p"}), "q": frozenset({"r"}), "r": frozenset({"s"})}
    assert cycles({**graph, "s": frozenset({"q"})}) == [(frozenset({"q", "r", "s"}), ["q", "r", "s", "q"])]
    assert cycles({**graph, "s": frozenset()}) == []


def test_layer_violations_name_arrows_running_up() -> None:
    layers = [("top", ("app",)), ("middle", ("lib", "app.helpers")), ("bottom", ("base",))]
    graph = {
        "app.main": frozenset({"lib.x", "base", "app.helpers"}),
        "app.helpers": frozenset({"app.main", "base"}),
        "lib.x": frozenset({"app.main", "base", "other"}),
        "base": frozenset({"lib.x"}),
        "other": frozenset({"app.main"}),
    }
    assert layer_violations(graph, layers) == [
        ("app.helpers", "app.main"),
        ("base", "lib.x"),
        ("lib.x", "app.main"),
    ]
    assert layer_violations(graph, layers, [("lib", "app"), ("base", "lib.x")]) == [
        ("app.helpers", "app.main")
    ]


# -- the project ------------------------------------------------------------------------------------------


def test_the_graph_covers_every_package() -> None:
    graph = import_graph()
    assert {"gateway.service.facade", "bot.client", "harness.runner"} <= graph.keys()
    assert "gateway.running.backends.factory" in graph["gateway.service.sitedir"]


def test_no_import_circle() -> None:
    found = cycles(import_graph())
    parts = [part for part, _ in found]
    new = [
        f"{' -> '.join(circle)} (part of {sorted(part)})"
        for part, circle in found
        if part not in KNOWN_CYCLES
    ]
    assert not new, "import circles:\n" + "\n".join(new)
    gone = [sorted(known) for known in KNOWN_CYCLES if known not in parts]
    assert not gone, f"no longer circles, remove them from KNOWN_CYCLES: {gone}"


def test_no_module_over_400_lines() -> None:
    lengths = {
        str(path.relative_to(REPO_ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in module_files().values()
    }
    long = sorted(path for path, lines in lengths.items() if lines > MAX_LINES)
    new = [f"{path}: {lengths[path]} lines" for path in long if path not in KNOWN_LONG]
    assert not new, f"modules over {MAX_LINES} lines (split them):\n" + "\n".join(new)
    gone = [path for path in KNOWN_LONG if path not in long]
    assert not gone, f"no longer over {MAX_LINES} lines, remove them from KNOWN_LONG: {gone}"


def test_no_arrow_runs_back_up_the_layers() -> None:
    found = layer_violations(import_graph(), LAYERS, ALLOWED_UPWARD)
    new = [f"{a} -> {b}" for a, b in found if (a, b) not in KNOWN_UPWARD]
    assert not new, "imports running back up docs/architecture.md's layers:\n" + "\n".join(new)
    gone = [pair for pair in KNOWN_UPWARD if pair not in found]
    assert not gone, f"no longer running up, remove them from KNOWN_UPWARD: {gone}"


def test_every_module_has_a_layer() -> None:
    unplaced = [
        module
        for module in import_graph()
        if layer_of(module, LAYERS) is None and not any(_named_by(module, p) for p in NOT_IN_TABLE)
    ]
    assert "gateway.service.facade" in import_graph() and "gateway.core.commands" in import_graph()
    assert not unplaced, f"name these in a row of docs/architecture.md's table and LAYERS: {sorted(unplaced)}"


def test_the_remote_client_imports_only_the_core_and_config() -> None:
    graph = import_graph()
    client = [module for module in graph if _named_by(module, "gateway.client")]
    assert len(client) >= 4
    bad = [
        f"{module} -> {imported}"
        for module in client
        for imported in graph[module]
        if not any(_named_by(imported, allowed) for allowed in CLIENT_MAY_IMPORT)
    ]
    assert not bad, bad


def test_the_table_in_the_docs_names_every_layer() -> None:
    """Each layer's folders are named in docs/architecture.md's table, so a newcomer finds them there."""
    doc = (REPO_ROOT / "docs" / "architecture.md").read_text()
    table = doc[doc.index("## Layers") :]
    table = table[: table.index("\n## ", 1)]
    for _, prefixes in LAYERS:
        for prefix in prefixes:
            folder = prefix.replace(".", "/")
            shown = f"`{folder}/`" if (REPO_ROOT / folder).is_dir() else f"`{folder}.py`"
            assert shown in table, f"docs/architecture.md's layer table does not name {shown}"
