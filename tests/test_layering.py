"""The package's shape, checked: no import cycle anywhere in ``dq_stores``, and no Dagster in it.

The import graph is read from the source (``ast``), every ``import`` statement counted - at module
level and inside functions alike, since a function-level import placed to dodge a cycle is still
a cycle - except those under ``if TYPE_CHECKING:`` (never executed). Importing ``a.b.c`` also
imports the packages ``a.b`` (their ``__init__``), unless the importer lives inside that package
(its parent is initialised first anyway); the root package ``dq_stores`` itself is left out, being
the public facade that re-exports everything.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "dq_stores"


def _modules(package: str) -> dict[str, Path]:
    base = ROOT / package
    found: dict[str, Path] = {}
    for path in sorted(base.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            todo.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                base = parts if is_package else parts[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)
        todo.extend(ast.iter_child_nodes(node))


def import_graph(package: str) -> dict[str, set[str]]:
    modules = _modules(package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        for target in _imports(tree, name, path.name == "__init__.py"):
            # The module itself and every package above it that is not the root facade.
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                candidate = ".".join(parts[:i])
                # A package that contains the importer is initialised already (being its parent).
                if candidate in modules and candidate != name and not name.startswith(f"{candidate}."):
                    graph[name].add(candidate)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_graph_reader_sees_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    graph = import_graph(PACKAGE)
    assert "dq_stores.base" in graph["dq_stores.stores"]  # a module-level import
    assert "dq_stores.inputs" in graph["dq_stores.base"]


def test_no_import_cycle_in_dq_stores() -> None:
    cycle = find_cycle(import_graph(PACKAGE))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_dq_stores_never_imports_dagster() -> None:
    for name, path in _modules(PACKAGE).items():
        tree = ast.parse(path.read_text(), str(path))
        found = [
            t
            for t in _imports(tree, name, path.name == "__init__.py")
            if t.split(".")[0].startswith("dagster")
        ]
        assert not found, f"{name} imports {found}"


def test_the_lazy_trigger_exports_are_exactly_each_modules_public_names() -> None:
    """``dq_dagster.triggers`` lists its re-exports by hand so that importing a pure core costs no
    Dagster import; the lists must not drift from the modules' own ``__all__``."""
    import importlib

    import dq_dagster.triggers as triggers

    by_module: dict[str, set[str]] = {}
    for name, module in triggers._EXPORTS.items():
        by_module.setdefault(module, set()).add(name)
    for module, names in by_module.items():
        assert names == set(importlib.import_module(module).__all__), module
