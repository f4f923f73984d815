"""Every public name has exactly one public home.

`callsid_resolver` holds the clients, resolvers, caches, models and the WHOLE exception tree;
`callsid_resolver.live` the live call, `callsid_resolver.webhooks` the post-call webhooks,
`callsid_resolver.testing` the emulator, `callsid_resolver.mcp_server` the MCP server. Every
other module is private (a leading underscore somewhere in its dotted name), except the entry
points that tools load by name.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import callsid_resolver
from callsid_resolver import CallSidResolverError

PUBLIC_MODULES = (
    "callsid_resolver",
    "callsid_resolver.live",
    "callsid_resolver.webhooks",
    "callsid_resolver.testing",
    "callsid_resolver.mcp_server",
)
# Named by pyproject.toml (console script, pytest11 entry point) or by `python -m`: their names
# are fixed by those tools, and they are no home of any importable name.
ENTRY_POINTS = (
    "callsid_resolver.cli",
    "callsid_resolver.pytest_plugin",
    "callsid_resolver.__main__",
)
# Exception classes that never reach a caller of the library, and why; every other exception
# class must be in the tree under `CallSidResolverError`, exported from the top level.
INTERNAL_EXCEPTIONS = {
    "UsageError": "the CLI turns it into exit code 2 and one line on stderr",
    "JsonRefused": "the bounded JSON decoder's refusal; callers wrap it in a tree error",
    "Skip": "a Sender channel that does not apply; it ends up as a NotLive reason",
    "MalformedMessage": "a router message no worker can read; answered on the wire, not raised",
    "QueryError": "the emulator answers it with a 422 body",
    "SettingError": "the emulator's control endpoint answers it with a 422 body",
    "Dropped": "the emulator hanging up; its fronts close the connection",
    "ConnectionDropped": "the emulator's ASGI transport drops a connection as httpx would",
}


ROOT = Path(__file__).parent.parent
IMPORT = re.compile(r"^\s*from (callsid_resolver[\w.]*) import (?:\(([^)]*)\)|(.+))$", re.M)


def is_private(module_name: str) -> bool:
    return any(part.startswith("_") for part in module_name.split(".")[1:])


def module_names() -> list[str]:
    walk = pkgutil.walk_packages(callsid_resolver.__path__, "callsid_resolver.")
    return ["callsid_resolver", *(info.name for info in walk)]


def package_modules() -> Iterator[ModuleType]:
    for name in module_names():
        if name != "callsid_resolver.__main__":  # importing it runs the CLI
            yield importlib.import_module(name)


def exported(module_name: str) -> dict[str, object]:
    module = importlib.import_module(module_name)
    return {name: getattr(module, name) for name in module.__all__}


def tree(root: type) -> Iterator[type]:
    for child in root.__subclasses__():
        yield child
        yield from tree(child)


def ruff_order(name: str) -> tuple[int, str]:
    """RUF022's "isort-style" order: SCREAMING_CASE, then CamelCase, then the rest."""
    if name.isupper() and len(name) > 1:
        return 0, name
    if name[0].isupper():
        return 1, name
    return 2, name


def test_every_module_is_public_an_entry_point_or_private() -> None:
    names = set(module_names())
    stray = names - set(PUBLIC_MODULES) - set(ENTRY_POINTS) - {n for n in names if is_private(n)}
    assert not stray, f"public-looking modules that are no home of the API: {sorted(stray)}"


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_is_sorted_unique_and_resolves(module_name: str) -> None:
    names = importlib.import_module(module_name).__all__
    assert list(names) == sorted(names, key=ruff_order)
    assert len(names) == len(set(names))
    for name, value in exported(module_name).items():
        assert value is not None, f"{module_name}.{name}"


def test_public_modules_share_no_name_and_no_object() -> None:
    homes: dict[str, str] = {}
    objects: dict[int, str] = {}
    for module_name in PUBLIC_MODULES:
        for name, value in exported(module_name).items():
            assert name not in homes, f"{name} is in {homes.get(name)} and {module_name}"
            homes[name] = module_name
            if inspect.isclass(value) or inspect.isfunction(value):
                other = objects.setdefault(id(value), f"{module_name}.{name}")
                assert other == f"{module_name}.{name}", f"{other} is {module_name}.{name}"


@pytest.mark.parametrize("module_name", ["callsid_resolver", "callsid_resolver.live"])
def test_a_facade_defines_nothing_it_does_not_export(module_name: str) -> None:
    module = importlib.import_module(module_name)
    # "@py…" names are pytest's assertion-rewriting helpers, not ours.
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith(("_", "@")) and not inspect.ismodule(value)
    }
    assert public - {"annotations"} <= set(module.__all__)


def test_the_whole_error_tree_is_exported_from_the_top_level_only() -> None:
    top = {v for v in exported("callsid_resolver").values() if isinstance(v, type)}
    top = {cls for cls in top if issubclass(cls, BaseException)}
    whole_tree = {CallSidResolverError, *tree(CallSidResolverError)}
    assert sorted(c.__name__ for c in whole_tree - top) == [], "missing at the top level"
    assert sorted(c.__name__ for c in top - whole_tree) == [], "exported but not in the tree"
    for module_name in PUBLIC_MODULES[1:]:
        errors = [n for n, v in exported(module_name).items() if isinstance(v, type)]
        errors = [n for n in errors if issubclass(exported(module_name)[n], BaseException)]
        assert not errors, f"{module_name} exports exception classes: {errors}"


def test_every_exception_class_is_in_the_tree_or_internal() -> None:
    found = [
        value
        for module in package_modules()
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__
    ]
    public = {id(v) for m in PUBLIC_MODULES for v in exported(m).values()}
    for cls in found:
        name = f"{cls.__module__}.{cls.__qualname__}"
        if cls.__name__ in INTERNAL_EXCEPTIONS:
            assert not issubclass(cls, CallSidResolverError), f"{name} is in the tree"
            assert id(cls) not in public, f"{name} is exported"
        else:
            assert issubclass(cls, CallSidResolverError), f"{name}: not in the tree nor internal"
            assert getattr(callsid_resolver, cls.__name__, None) is cls, name
    gone = set(INTERNAL_EXCEPTIONS) - {cls.__name__ for cls in found}
    assert not gone, f"internal exceptions that no longer exist (drop them here): {gone}"


def test_every_public_class_is_defined_in_a_private_module() -> None:
    # The home is where users import from; the definition lives in a private module, so a
    # public module is only a list of names (httpx: `httpx.Client.__module__ == "httpx._client"`).
    public_defined = {
        f"{cls.__module__}.{cls.__qualname__}"
        for module_name in PUBLIC_MODULES
        for cls in exported(module_name).values()
        if inspect.isclass(cls)
        and cls.__module__.startswith("callsid_resolver")
        and not is_private(cls.__module__)
    }
    assert public_defined == set()


def test_the_top_level_holds_no_live_or_webhook_api() -> None:
    top = set(callsid_resolver.__all__)
    for module_name in ("callsid_resolver.live", "callsid_resolver.webhooks"):
        assert not top & set(importlib.import_module(module_name).__all__)
    for name in ("Sender", "parse_webhook", "CacheKeys", "SIGNATURE_HEADER"):
        assert not hasattr(callsid_resolver, name), name


def test_public_objects_are_documented() -> None:
    for name in callsid_resolver.__all__:
        obj = getattr(callsid_resolver, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name} has no docstring"


def import_statements(text: str) -> Iterator[tuple[str, list[str]]]:
    """(module, names) of each `from callsid_resolver... import ...` in `text`."""
    for module_name, group, line in IMPORT.findall(text):
        names = re.sub(r"#.*", "", group or line)
        yield module_name, [n.split(" as ")[0].strip() for n in names.split(",") if n.strip()]


def test_docs_examples_and_tests_import_each_name_from_its_home() -> None:
    homes = {module_name: set(exported(module_name)) for module_name in PUBLIC_MODULES}
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]
    files += [f for d in ("examples", "tests", "benchmarks") for f in (ROOT / d).rglob("*.py")]
    wrong = [
        f"{path.relative_to(ROOT)}: {name} from {module_name}"
        for path in files
        for module_name, names in import_statements(path.read_text())
        if module_name in homes
        for name in names
        # A leading underscore names a private submodule (`from callsid_resolver import _client`).
        if name not in homes[module_name] and not name.startswith("_")
    ]
    assert not wrong, "imported from a module that is not its home:\n" + "\n".join(wrong)
