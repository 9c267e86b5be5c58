"""The house's rooms (docs/architecture.md): packages by what a reader looks for, imports
pointing down through the layers, no cycle, no module too long to read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import service

PACKAGE = Path(service.__file__).parent
MAX_TOP_LEVEL_MODULES = 12
MAX_LINES = 800
# numba kernels: long straight-line loops, one per batch column, read kernel by kernel
LONG_ALLOWED = {"service.rating.batch_kernels"}
# Lowest first. A module imports modules of its own package and of lower layers only.
LAYERS = (
    ("service.rating",),  # the pure core
    ("service.clock", "service.config", "service.errors", "service.schemas"),
    ("service.db",),
    ("service.security",),
    ("service.ops",),
    ("service.flows",),
    ("service.ingest",),
    ("service.jobs",),
    ("service.api",),
    ("service.tools",),
    ("service.cli",),
)


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imports(module: str) -> set[str]:
    """The service modules `module` imports, at the top or inside a function."""
    found: set[str] = set()
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from service.x import y`: y may be a module
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: _imports(module) for module in MODULES}


def _layer(module: str) -> tuple[int, str]:
    """(rank, the layer's package or module) of a module."""
    for rank, members in enumerate(LAYERS):
        for member in members:
            if module == member or module.startswith(member + "."):
                return rank, member
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py")


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph`, if it has any (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                return [*path[path.index(imported) :], imported]
            if imported not in state and (found := visit(imported)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_the_top_level_holds_few_modules() -> None:
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_no_module_is_too_long_to_read() -> None:
    long = {
        module: lines
        for module, path in MODULES.items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
        and module not in LONG_ALLOWED
    }
    assert not long, f"over {MAX_LINES} lines: {long}"


def test_every_package_says_what_it_holds() -> None:
    for path in PACKAGE.rglob("__init__.py"):
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert docstring, f"{path.relative_to(PACKAGE.parent)} has no docstring"


def test_no_import_cycle() -> None:
    assert _cycle(GRAPH) is None, " -> ".join(_cycle(GRAPH) or [])


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "service"))
def test_imports_point_down(module: str) -> None:
    rank, layer = _layer(module)
    upward = {
        imported
        for imported in GRAPH[module]
        if (other := _layer(imported)) != (rank, layer) and other[0] >= rank
    }
    assert not upward, f"{module} ({layer}) imports {upward}, a layer not below its own"
