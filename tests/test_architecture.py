"""The rules of docs/architecture.md, checked: imports run one way, modules stay small, and no
module reaches for another module's private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

PACKAGE = "callsid_resolver"
SOURCE = Path(__file__).resolve().parent.parent / "src" / PACKAGE
MAX_LINES = 400
# `_core` is the sans-I/O bottom: it may lean on the models and the error tree, nothing else.
CORE_MAY_IMPORT = {f"{PACKAGE}._models", f"{PACKAGE}._exceptions", f"{PACKAGE}._json"}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    # Every import counts, those inside functions and under TYPE_CHECKING too: a cycle dodged by
    # a late import is still a cycle a reader has to hold in their head.
    return grimp.build_graph(PACKAGE, cache_dir=None)


def strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """The import cycles: Tarjan's strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_no_import_cycle(graph: grimp.ImportGraph) -> None:
    assert strongly_connected(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    toy = grimp.ImportGraph()
    for name in ("a", "b", "c"):
        toy.add_module(name)
    toy.add_import(importer="a", imported="b")
    toy.add_import(importer="b", imported="a")
    toy.add_import(importer="c", imported="a")
    assert strongly_connected(toy) == [["a", "b"]]


def test_core_imports_nothing_above_it(graph: grimp.ImportGraph) -> None:
    core = f"{PACKAGE}._core"
    upward = {
        (module, imported)
        for module in graph.find_descendants(core)
        for imported in graph.find_modules_directly_imported_by(module)
        if not imported.startswith(core) and imported not in CORE_MAY_IMPORT
    }
    assert upward == set()


def modules() -> Iterator[Path]:
    yield from sorted(SOURCE.rglob("*.py"))


def test_no_module_over_the_limit() -> None:
    sizes = {str(p.relative_to(SOURCE)): len(p.read_text().splitlines()) for p in modules()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def private_uses(path: Path) -> list[str]:
    """Where `path` uses a private name it does not define: `obj._name` on another module's
    object, or `from module import _name` (importing a private *module* is fine: the package
    is the boundary)."""
    tree = ast.parse(path.read_text())
    own: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
        elif isinstance(node, ast.arg):
            own.add(node.arg)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = path.parent
            for _ in range(node.level - 1):
                base = base.parent
            for part in (node.module or "").split(".") if node.module else []:
                base = base / part
            for alias in node.names:
                is_module = (base / f"{alias.name}.py").exists() or (base / alias.name).is_dir()
                if _is_private(alias.name) and not is_module:
                    found.append(f"{path.name}:{node.lineno} imports {alias.name}")
        elif isinstance(node, ast.Attribute) and _is_private(node.attr) and node.attr not in own:
            found.append(f"{path.name}:{node.lineno} uses {ast.unparse(node)}")
    return found


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")


def test_no_private_name_across_modules() -> None:
    found = [use for path in modules() for use in private_uses(path)]
    assert found == []


def test_the_private_name_check_sees_a_reach(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from .other import _helper\n"
        "class A:\n    def __init__(self):\n        self._mine = 1\n"
        "    def f(self, other):\n        return self._mine + other._theirs\n"
    )
    assert private_uses(module) == ["m.py:1 imports _helper", "m.py:6 uses other._theirs"]


def test_generated_twins_are_current() -> None:
    script = SOURCE.parent.parent / "scripts" / "unasync.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout
