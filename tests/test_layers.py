"""The architecture, checked from the source: no import circles, and the layers point one way.

Every ``import`` statement counts, inside functions too (a function-level import hides a circle
from Python's start-up, not from a reader). ``if TYPE_CHECKING:`` imports are left out: they never
run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "service", "eval")
# engine decides, service hosts it, eval measures both: nothing points back up.
FORBIDDEN = {
    "engine": ("service", "eval"),
    "service": ("eval",),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for package in PACKAGES
        for p in sorted((REPO / package).rglob("*.py"))
        if ".venv" not in p.parts
    }


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, known: set[str]) -> Iterator[str]:
    """Project modules imported anywhere in ``tree`` (not under ``if TYPE_CHECKING``)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (name for child in node.orelse for name in _imports(child, known))
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _resolve(alias.name, known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                yield from _resolve(full if full in known else node.module, known)
        yield from _imports(node, known)


def _resolve(name: str, known: set[str]) -> Iterator[str]:
    while name and name not in known:
        name = name.rpartition(".")[0]
    if name:
        yield name


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        # A package's own __init__ is imported before its submodules anyway: not an edge.
        imported = set(_imports(tree, known))
        graph[name] = {m for m in imported if m != name and not name.startswith(m + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of modules around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_circles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_point_one_way(layer: str) -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if module.split(".")[0] == layer
        for target in sorted(targets)
        if target.split(".")[0] in FORBIDDEN[layer]
    ]
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_a_circle_hidden_in_a_function() -> None:
    # The detector itself must be able to fail: a circle made only of a function-level import.
    a = ast.parse("def f():\n    from pkg.b import x\n")
    b = ast.parse("from pkg.a import y\n")
    known = {"pkg.a", "pkg.b"}
    graph = {"pkg.a": set(_imports(a, known)), "pkg.b": set(_imports(b, known))}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
