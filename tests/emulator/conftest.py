"""Fixtures of the emulator suite: the default recording, reached in-process and over loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from callsid_resolver.testing import Emulator, EmulatorServer

KEY = "test-key"
API = "https://api.elevenlabs.io"
LIST = "/v1/convai/conversations"
LIVE_SID = "CAdeadbeef000000000000000000000001"
LIVE_ID = "conv_fake0inbound0live00000000001"
DONE_SID = "CAdeadbeef00000000000000000000beef"
DONE_ID = "conv_fake0inbound0done00000000002"
OUTBOUND_SID = "CAfeedface00000000000000000000f00d"
OUTBOUND_ID = "conv_fake0outbound0twilio00000003"
WEB_ID = "conv_fake0web0widget0000000000004"
SIP_ID = "conv_fake0sip0trunk0done00000006"
SIP_NUMBER = "phnum_fake0sip0number00000000002"
TWILIO_NUMBER = "phnum_fake0twilio0number0000000001"
# Copies of the shared API examples (owned by the core suite; read only).
EXAMPLES = Path(__file__).parent.parent / "recordings"


def example(name: str) -> Any:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def ids(page: dict[str, Any]) -> list[str]:
    return [c["conversation_id"] for c in page["conversations"]]


def walk(http: httpx.Client, **params: Any) -> tuple[list[str], int]:
    """Every conversation id the list endpoint yields, following cursors; and the page count."""
    seen: list[str] = []
    pages = 0
    while True:
        response = http.get(LIST, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        seen += ids(page)
        if not page["has_more"]:
            assert page["next_cursor"] is None
            return seen, pages
        assert page["next_cursor"]
        params["cursor"] = page["next_cursor"]


@pytest.fixture
def emu() -> Emulator:
    return Emulator(recording="default")


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(transport=emu.transport(), base_url=API, headers={"xi-api-key": KEY}) as c:
        yield c


@pytest.fixture
async def ahttp(emu: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=emu.transport(), base_url=API, headers={"xi-api-key": KEY}
    ) as client:
        yield client


@pytest.fixture
def server(emu: Emulator) -> Iterator[EmulatorServer]:
    with EmulatorServer(emu, host="127.0.0.1", port=0) as running:
        yield running


@pytest.fixture
def served(server: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers={"xi-api-key": KEY}) as client:
        yield client
