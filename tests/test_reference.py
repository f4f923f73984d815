"""The API reference lists every public name and method, with its signature and a docstring.

mkdocstrings renders what `docs/reference.md` names with the options in `mkdocs.yml`; a public
method without a docstring, a private base class or a hidden constructor signature is what a
reader of the reference would miss, so each is a failure here.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parent.parent
MODULES = [
    "callsid_resolver",
    "callsid_resolver.live",
    "callsid_resolver.testing",
    "callsid_resolver.webhooks",
    "callsid_resolver.mcp_server",
]
# Methods every class has from Python, pydantic or Exception: documented there, not here.
FOREIGN = (
    "builtins", "pydantic", "typing", "abc", "collections", "enum", "_collections_abc", "httpx",
)  # fmt: skip


def public_objects() -> Iterator[tuple[str, Any]]:
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            yield f"{module_name}.{name}", getattr(module, name)


def own_members(cls: type) -> Iterator[tuple[str, Any]]:
    """Public methods and properties `cls` defines or inherits from this library."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] in FOREIGN or klass is object:
            continue
        for name, member in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            seen.add(name)
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if inspect.isfunction(member) or isinstance(member, property):
                yield name, member


def undocumented() -> list[str]:
    missing: list[str] = []
    for qualname, obj in public_objects():
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue  # constants and type aliases are documented where they are used
        if not inspect.getdoc(obj):
            missing.append(qualname)
        if inspect.isclass(obj):
            for _, member in own_members(obj):
                if not (member.__doc__ or "").strip():
                    function = member.fget if isinstance(member, property) else member
                    missing.append(f"{function.__module__}.{function.__qualname__}")
    return sorted(set(missing))


def test_every_public_name_and_method_has_a_docstring() -> None:
    missing = undocumented()
    assert not missing, f"{len(missing)} without a docstring:\n" + "\n".join(missing)


def test_the_reference_shows_signatures_and_no_private_base() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    options = dict(
        re.findall(
            r"^\s+(show_[a-z_]+|merge_init_into_class|separate_signature): (\w+)", config, re.M
        )
    )
    # Hidden members are exactly the undocumented ones, which the test above forbids for methods.
    assert options.get("show_if_no_docstring") == "false"
    assert options.get("show_bases") == "false"  # a private base class tells a reader nothing
    assert options.get("merge_init_into_class") == "true"  # constructor signatures
    assert options.get("show_signature", "true") == "true"
    assert options.get("separate_signature") == "true"


@pytest.mark.parametrize(
    "qualname",
    [
        "callsid_resolver.live.Sender.send_contextual_update",
        "callsid_resolver.live.Sender.send_user_message",
        "callsid_resolver.live.Sender.send_tool_result",
        "callsid_resolver.live.MonitorChannel.end_call",
        "callsid_resolver.CallSidResolver.forget",
    ],
)
def test_the_methods_a_user_reaches_for_first_are_documented(qualname: str) -> None:
    module_name, cls_name, method = qualname.rsplit(".", 2)
    member = getattr(getattr(importlib.import_module(module_name), cls_name), method)
    doc = inspect.getdoc(member) or ""
    assert doc, qualname
    parameters = [p for p in inspect.signature(member).parameters if p != "self"]
    if parameters:  # google style: the parameters under "Args:"
        assert "Args:" in doc, f"{qualname} documents no arguments"


def test_every_public_name_is_in_the_reference_page() -> None:
    """Each public class and function appears on the page, itself or through its module."""
    # The MCP server's reference is on its own page, next to the guide to it.
    page = "\n".join((ROOT / "docs" / name).read_text() for name in ("reference.md", "mcp.md"))
    shown: set[int] = set()
    for path in re.findall(r"^::: ([\w.]+)$", page, re.M):
        try:
            target: Any = importlib.import_module(path)
        except ImportError:
            module_name, name = path.rsplit(".", 1)
            target = getattr(importlib.import_module(module_name), name)
        if inspect.ismodule(target):  # a whole module: everything public defined in it
            shown |= {id(v) for k, v in vars(target).items() if not k.startswith("_")}
        else:
            shown.add(id(target))
    missing = [
        qualname
        for qualname, obj in public_objects()
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and id(obj) not in shown
    ]
    assert not missing, "not in docs/reference.md:\n" + "\n".join(sorted(set(missing)))
