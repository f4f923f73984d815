"""The Python samples of the README and the guides run, against the emulator, so they cannot rot.

Each sample runs as written, with the names a reader has in scope by then (`call_sid`, the
outbound-call `response`) and `ELEVENLABS_BASE_URL` pointing at a served emulator that holds
the calls the samples name. A sample holding `await` runs inside a coroutine; one defining
`test_` functions runs as a pytest module, as a reader would paste it.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from callsid_resolver import ElevenLabsClient
from callsid_resolver.testing import Emulator, EmulatorServer

from .conftest import make_conversation

pytest_plugins = ["pytester"]

ROOT = Path(__file__).parent.parent
PAGES = ["README.md", "docs/quickstart.md", "docs/caching.md", "docs/testing.md"]
SAMPLE_SID = "CA0123456789abcdef0123456789abcdef"
SAMPLE_AGENT = "agent_..."
FENCE = re.compile(r"```python\n(.*?)```", re.DOTALL)


def pages() -> list[Any]:
    return [pytest.param(FENCE.findall((ROOT / page).read_text()), id=page) for page in PAGES]


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorServer]:
    call = make_conversation(7, status="in-progress", agent_id=SAMPLE_AGENT)
    call["metadata"]["phone_call"]["call_sid"] = SAMPLE_SID
    call["conversation_initiation_client_data"]["dynamic_variables"]["system__call_sid"] = (
        SAMPLE_SID
    )
    with EmulatorServer(Emulator([call], recording="default")) as server:
        monkeypatch.setenv("ELEVENLABS_API_KEY", "docs-key")
        monkeypatch.setenv("ELEVENLABS_BASE_URL", server.base_url)
        yield server


@pytest.mark.parametrize("codes", pages())
def test_page_samples_run(
    codes: list[str], served: EmulatorServer, pytester: pytest.Pytester
) -> None:
    """A page's samples run in order in one scope, as a reader follows them."""
    assert codes
    scope: dict[str, Any] = {
        "call_sid": SAMPLE_SID,
        "response": {
            "callSid": "CAfeedface00000000000000000000f00d",
            "conversation_id": "conv_fake0outbound0twilio00000003",
        },
    }
    try:
        for code in codes:
            run(code, scope, pytester)
    finally:
        for value in scope.values():  # a reader's process would live on; ours closes up
            if isinstance(value, (ElevenLabsClient, redis.Redis)):
                value.close()


def run(code: str, scope: dict[str, Any], pytester: pytest.Pytester) -> None:
    if "def test_" in code:
        pytester.makepyfile(test_sample=code)
        pytester.makeini("[pytest]\nasyncio_mode = auto\n")
        result = pytester.runpytest_subprocess("-q")
        assert result.ret == 0, result.stdout.str()
    elif "await " in code:
        wrapped = "async def __sample():\n" + textwrap.indent(code, "    ")
        exec(compile(wrapped, "<sample>", "exec"), scope)  # noqa: S102
        asyncio.run(scope["__sample"]())
    else:
        exec(compile(code, "<sample>", "exec"), scope)  # noqa: S102
