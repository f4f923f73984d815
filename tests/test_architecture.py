"""The rules of docs/architecture.md, checked: imports run one way, modules stay small, and no
module reaches for another module's private names."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

PACKAGE = "callsid_resolver"
SOURCE = Path(__file__).resolve().parent.parent / "src" / PACKAGE
MAX_LINES = 400


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


# docs/architecture.md's layers, bottom first: a module may import its own layer and those below.
# Names are module paths below the package; the longest matching prefix places a module.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("bottom", ("_models", "_exceptions", "_not_found", "_core._secrets", "_json", "__version__")),
    ("core", ("_core",)),
    ("clients", ("_async.client", "_sync.client", "_client_base", "_concurrency", "_shards")),
    ("clients", ("_watchdog",)),
    ("cache twins", ("_async.redis_cache", "_sync.redis_cache", "_redis_support")),
    ("cache twins", ("_async.tiered_cache", "_sync.tiered_cache")),
    ("cache seam", ("_cache", "_memory")),
    ("resolvers", ("_async", "_sync", "_resolver_base", "_lookups", "_priming", "_flights")),
    ("features", ("live", "testing", "_mcp_tool", "_mcp_http")),
    ("features", ("_webhook_events", "_webhook_dedupe", "_webhook_signature")),
    ("features", ("_async.redis_dedupe", "_sync.redis_dedupe")),
    ("public faces", ("", "webhooks", "mcp_server")),
    ("entry points", ("cli", "_cli_support", "_emulator_cli", "_mcp_cli", "_doctor", "_demo")),
    ("entry points", ("pytest_plugin", "__main__")),
]
LAYER_ORDER = list(dict.fromkeys(name for name, _ in LAYERS))


def layer_of(module: str) -> str | None:
    name = module.removeprefix(PACKAGE).removeprefix(".")
    matches = [
        (len(prefix), layer)
        for layer, prefixes in LAYERS
        for prefix in prefixes
        if name == prefix or (prefix and name.startswith(prefix + "."))
    ]
    return max(matches)[1] if matches else None


def upward_imports(graph: grimp.ImportGraph) -> list[str]:
    """Each import of a module from a layer above its own."""
    return sorted(
        f"{module} ({layer_of(module)}) imports {imported} ({layer_of(imported)})"
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if LAYER_ORDER.index(str(layer_of(imported))) > LAYER_ORDER.index(str(layer_of(module)))
    )


def test_imports_run_down_the_layers(graph: grimp.ImportGraph) -> None:
    unplaced = sorted(m for m in graph.modules if layer_of(m) is None)
    assert unplaced == [], "add these modules to LAYERS and docs/architecture.md"
    assert upward_imports(graph) == []


def test_the_layer_check_sees_an_upward_import() -> None:
    assert layer_of(f"{PACKAGE}._core._secrets") == "bottom"  # the longer prefix wins
    assert layer_of(PACKAGE) == "public faces"
    toy = grimp.ImportGraph()
    for name in ("_core._plan", "live._sender", "_cache"):
        toy.add_module(f"{PACKAGE}.{name}")
    toy.add_import(importer=f"{PACKAGE}.live._sender", imported=f"{PACKAGE}._cache")
    assert upward_imports(toy) == []
    toy.add_import(importer=f"{PACKAGE}._core._plan", imported=f"{PACKAGE}.live._sender")
    assert upward_imports(toy) == [
        f"{PACKAGE}._core._plan (core) imports {PACKAGE}.live._sender (features)"
    ]


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


def test_every_module_lists_its_names() -> None:
    # `__all__` is a module's public-internal surface: what other modules may import from it.
    unlisted, unresolved = [], []
    for path in modules():
        if path.name in ("__init__.py", "__main__.py", "__version__.py"):
            continue
        dotted = ".".join((PACKAGE, *path.relative_to(SOURCE).with_suffix("").parts))
        module = importlib.import_module(dotted)
        names = getattr(module, "__all__", None)
        if names is None:
            unlisted.append(dotted)
        else:
            unresolved += [f"{dotted}.{name}" for name in names if not hasattr(module, name)]
    assert unlisted == []
    assert unresolved == []
