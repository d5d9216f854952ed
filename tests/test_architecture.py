"""Import architecture: no import cycles between the project's modules.

The layer and boundary contracts are import-linter's (`lint-imports`, configured in pyproject.toml);
import-linter has no "no cycles" contract, so cycles are checked here on the same graph (grimp, the
library import-linter builds its graph with). Two strengths:

- no package has a cycle at all, counting deferred imports inside functions and
  `if TYPE_CHECKING:` imports: a deferred import is still a dependency (screens reach the app
  through the `ragweld_tui.studio.Studio` protocol, not by importing it);
- across all four packages, the imports that run when a module is imported (module and class
  bodies, not functions, not `if TYPE_CHECKING:`) have no cycle, so the import order never matters.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("store", "backends", "trainers", "ragweld_tui")
LOWER = PACKAGES  # every package: no cycle at all, deferred and TYPE_CHECKING imports included


@lru_cache(maxsize=1)
def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def _source(module: str) -> Path:
    base = REPO.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_time_lines(body: Iterable[ast.stmt]) -> set[int]:
    """Line numbers of the import statements that run when the module is imported."""
    lines: set[int] = set()
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            lines.add(node.lineno)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            lines |= _import_time_lines(node.orelse)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                lines |= _import_time_lines(getattr(node, field, []))
    return lines


@lru_cache(maxsize=None)
def _module_lines(module: str) -> frozenset[int]:
    return frozenset(_import_time_lines(ast.parse(_source(module).read_text(encoding="utf-8")).body))


def _edges(modules: set[str], import_time_only: bool) -> dict[str, set[str]]:
    graph = _graph()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for importer in modules:
        for imported in graph.find_modules_directly_imported_by(importer) & modules:
            if import_time_only:
                details = graph.get_import_details(importer=importer, imported=imported)
                if not any(d["line_number"] in _module_lines(importer) for d in details):
                    continue
            edges[importer].add(imported)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _describe(cycles: list[list[str]], edges: dict[str, set[str]]) -> str:
    graph = _graph()
    lines = []
    for cycle in cycles:
        lines.append("cycle: " + ", ".join(cycle))
        for importer in cycle:
            for imported in sorted(edges[importer] & set(cycle)):
                where = [d["line_number"] for d in graph.get_import_details(importer=importer, imported=imported)]
                lines.append(f"  {importer} -> {imported} (line {', '.join(map(str, where))})")
    return "\n".join(lines)


def test_lower_layers_have_no_import_cycle() -> None:
    modules = {m for m in _graph().modules if m.split(".")[0] in LOWER}
    edges = _edges(modules, import_time_only=False)
    cycles = _cycles(edges)
    assert not cycles, _describe(cycles, edges)


def test_no_import_time_cycle() -> None:
    edges = _edges(set(_graph().modules), import_time_only=True)
    cycles = _cycles(edges)
    assert not cycles, _describe(cycles, edges)


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
