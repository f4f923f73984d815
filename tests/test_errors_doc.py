"""The exception tree is drawn in `_exceptions`' docstring and in docs/errors.md: both drawings
must be the real class hierarchy, every class once, under its real parent."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import callsid_resolver
from callsid_resolver import CallSidResolverError, _exceptions

ROOT = Path(__file__).parent.parent
ROOT_NAME = CallSidResolverError.__name__
# One class per line: the guides' `│   ├── Name   note` drawing; a line without a branch is a
# note that runs on from the line above.
BRANCH = re.compile(r"^((?:│   |    )*)[├└]── (\w+)")


def real_edges() -> set[tuple[str, str]]:
    def walk(parent: type) -> Iterator[tuple[str, str]]:
        for child in parent.__subclasses__():
            yield parent.__name__, child.__name__
            yield from walk(child)

    return set(walk(CallSidResolverError))


def drawn_edges(text: str, root: str = ROOT_NAME) -> list[tuple[str, str]]:
    """(parent, child) pairs of the one fenced tree in `text` that starts at `root`."""
    (block,) = [b for b in re.findall(r"```\n(.*?)```", text, re.S) if b.startswith(root)]
    lines = block.splitlines()
    assert lines[0].split() == [root], "the tree starts with the root alone on its line"
    path = [root]
    edges: list[tuple[str, str]] = []
    for line in lines[1:]:
        match = BRANCH.match(line)
        if match is None:
            continue  # a note running on from the line above
        depth = len(match.group(1)) // 4 + 1
        assert depth <= len(path), f"a branch deeper than its parent: {line!r}"
        del path[depth:]
        edges.append((path[-1], match.group(2)))
        path.append(match.group(2))
    return edges


def test_drawn_edges_reads_nesting_and_notes() -> None:
    text = "```\nA\n├── B   note\n│   └── C  note\n│              more note\n└── D\n```\n"
    assert drawn_edges(text, root="A") == [("A", "B"), ("B", "C"), ("A", "D")]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(_exceptions.__doc__ or "", id="_exceptions docstring"),
        pytest.param((ROOT / "docs" / "errors.md").read_text(), id="docs/errors.md"),
    ],
)
def test_the_drawn_tree_is_the_class_hierarchy(text: str) -> None:
    edges = drawn_edges(text)
    children = [child for _, child in edges]
    assert len(children) == len(set(children)), "a class is drawn twice"
    drawn, real = set(edges), real_edges()
    assert sorted(real - drawn) == [], "(parent, class) pairs missing from the drawing"
    assert sorted(drawn - real) == [], "drawn (parent, class) pairs that are not the hierarchy"


def test_every_drawn_class_is_importable_from_the_top_level() -> None:
    for _, child in drawn_edges(_exceptions.__doc__ or ""):
        assert child in callsid_resolver.__all__, child


def test_no_other_module_draws_the_tree() -> None:
    # Drawn once in code: other modules point to `_exceptions` instead.
    package = ROOT / "src" / "callsid_resolver"
    drawings = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if re.search(rf"^{ROOT_NAME}\n[├└]── ", path.read_text(), re.M)
    }
    assert "_exceptions.py" in drawings
    assert drawings == {"_exceptions.py"}
