"""`scripts/unasync.py`: the generated twins are up to date, and what renaming breaks (import
order, an unused `import asyncio`, a loop of yields) is mended so that ruff accepts them."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).parent.parent / "scripts" / "unasync.py"

SOURCE = '''"""Pages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable


async def items(pages: Callable[[], AsyncIterator[list[int]]]) -> AsyncIterator[int]:
    async for page in pages():
        for item in page:
            yield item
    await asyncio.sleep(time.monotonic() % 1)
'''

EXPECTED = '''# Generated from _async/pages.py by scripts/unasync.py: edit that file, not this.
"""Pages."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator


def items(pages: Callable[[], Iterator[list[int]]]) -> Iterator[int]:
    for page in pages():
        yield from page
    time.sleep(time.monotonic() % 1)
'''


@pytest.fixture(scope="module")
def unasync() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_renaming_and_mending(unasync: ModuleType) -> None:
    assert unasync.unasync_text(SOURCE, "_async/pages.py") == EXPECTED


def test_the_generated_twins_are_up_to_date(
    unasync: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ("_async/client.py", "_sync/client.py") in unasync.PAIRS
    assert unasync.main(["--check"]) == 0, capsys.readouterr().out
