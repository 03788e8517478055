"""The import graph of transferguard's own modules has no cycle (a layered package).

Every module under ``src/transferguard`` is parsed with :mod:`ast`; ``import`` and ``from … import``
statements are resolved to full module names (relative imports included; a package's
``__init__`` is a module of its own, and ``from pkg import sub`` names the submodule ``pkg.sub``).
Only edges between transferguard modules are kept. Two graphs are checked:

* the import-time graph (statements run when the module is imported, i.e. outside function
  bodies) must have no cycle at all;
* the full graph, which adds the deferred imports inside functions (used to keep torch out of
  ``--help``), must have no cycle either apart from the allow-listed edges below: a deferred
  import that closes a loop only hides the cycle, it does not remove it.

Imports under ``if TYPE_CHECKING:`` never run and are skipped. String references resolved with
``importlib`` (``_lazy.lazy_exports`` tables, registry entries written ``"module:object"``) are not
import statements and are not edges.
"""

from __future__ import annotations

import ast
from pathlib import Path

import transferguard

PACKAGE = "transferguard"
ROOT = Path(transferguard.__file__).resolve().parent

#: Deferred edges that still close a cycle, each with the one-line reason it is there. Only these
#: exact edges are exempt, so any other cycle fails; delete an entry as soon as its edge is gone.
ALLOWED_DEFERRED_EDGES: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{module name: (file, is a package __init__)}`` for every module of the package."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        out[".".join(parts)] = (path, is_package)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.Module, *, deferred: bool) -> list[ast.Import | ast.ImportFrom]:
    """Import statements of a module: those run at import time, plus (``deferred``) those in
    function bodies; never those under ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) and not deferred:
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _resolve(name: str, modules: dict[str, tuple[Path, bool]]) -> str | None:
    """The longest transferguard module that ``name`` names (``None`` outside the package)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(*, deferred: bool) -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets: list[str] = []
        for node in _import_nodes(tree, deferred=deferred):
            if isinstance(node, ast.Import):
                targets.extend(alias.name for alias in node.names)
                continue
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join([*package, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:  # `from pkg import sub` imports the submodule pkg.sub
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in modules else base)
        resolved = {_resolve(t, modules) for t in targets}
        graph[module] = {t for t in resolved if t is not None and t != module}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, …, a]``) per strongly connected component that has one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    cycles = []
    for component in components:  # a shortest way back to the start, inside the component
        start = min(component)
        paths = {start: [start]}
        frontier = [start]
        while frontier and start not in {w for v in frontier for w in graph[v]}:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & component):
                    if w not in paths:
                        paths[w] = [*paths[v], w]
                        nxt.append(w)
            frontier = nxt
        end = next(v for v in frontier if start in graph[v])
        cycles.append([*paths[end], start])
    return cycles


def _message(cycles: list[list[str]]) -> str:
    return "import cycle(s):\n" + "\n".join("  " + " -> ".join(c) for c in cycles)


def test_the_graph_sees_the_package() -> None:
    graph = import_graph(deferred=True)
    assert "transferguard.models" in graph["transferguard.experiments.runner"]
    assert "transferguard.attacks" in graph["transferguard.auditing.api"]  # from .. import attacks
    assert "transferguard.models._weights" in graph["transferguard.models._pretrained"]
    assert "transferguard.models" in graph  # a package's __init__ is a module of its own
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycle_at_import_time() -> None:
    cycles = find_cycles(import_graph(deferred=False))
    assert not cycles, _message(cycles)


def test_no_import_cycle_through_deferred_imports() -> None:
    graph = import_graph(deferred=True)
    for source, target in ALLOWED_DEFERRED_EDGES:
        graph[source].discard(target)
    cycles = find_cycles(graph)
    assert not cycles, _message(cycles) + "\n(a deferred import inside a function counts too)"


def test_models_weight_reading_sits_below_the_registry() -> None:
    """``_weights`` (what ``_pretrained`` reads weights with) reaches no registry or checkpoint."""
    graph = import_graph(deferred=True)
    seen, todo = set(), ["transferguard.models._pretrained"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph[module])
    assert not seen & {"transferguard.models.registry", "transferguard.models.checkpoint"}


def test_backends_do_not_import_the_runner() -> None:
    graph = import_graph(deferred=True)
    assert "transferguard.experiments.runner" not in graph["transferguard.experiments.backends"]
