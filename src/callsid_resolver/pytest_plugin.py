"""pytest plugin: an offline ElevenLabs for your tests (entry point `pytest11`).

Fixtures: `elevenlabs_emulator` (the `Emulator`, in-process), `elevenlabs_client` and
`async_elevenlabs_client` (clients wired to it, no sockets), `call_sid_resolver` and
`async_call_sid_resolver` (resolvers with a fresh in-memory cache), and `elevenlabs_server` (the
same emulator served on a loopback port, for WebSockets or another process).

Choose the data with the marker::

    @pytest.mark.callsid_resolver(recording="default", synthetic=1000, seed=7, filter_mode="ignore")

Nothing heavy is imported until a fixture is used, so the plugin costs nothing to test runs that
do not use it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from callsid_resolver import (
        AsyncCallSidResolver,
        AsyncElevenLabsClient,
        CallSidResolver,
        ElevenLabsClient,
    )
    from callsid_resolver.testing import Emulator, EmulatorServer

# The emulator accepts any non-empty key unless told otherwise; this one is obviously fake.
TEST_API_KEY = "test-key-callsid-resolver"
MARKER = "callsid_resolver"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(recording='default', synthetic=0, seed=0, filter_mode='support', api_key=None):"
        " the data and behaviour of the ElevenLabs emulator fixtures",
    )


@pytest.fixture
def elevenlabs_emulator(request: pytest.FixtureRequest) -> Emulator:
    """An ElevenLabs emulator loaded from a bundled recording (marker `callsid_resolver`)."""
    from callsid_resolver.testing import Emulator, synthetic_conversations

    options: dict[str, Any] = {}
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        options = dict(marker.kwargs)
    unknown = set(options) - {"recording", "synthetic", "seed", "filter_mode", "api_key"}
    if unknown:
        raise pytest.UsageError(f"unknown {MARKER} marker argument(s): {sorted(unknown)}")
    emulator = Emulator(
        recording=options.get("recording", "default"), api_key=options.get("api_key")
    )
    for conversation in synthetic_conversations(
        options.get("synthetic", 0), seed=options.get("seed", 0)
    ):
        emulator.add_conversation(conversation)
    emulator.filter_mode = options.get("filter_mode", "support")
    return emulator


@pytest.fixture
def elevenlabs_client(elevenlabs_emulator: Emulator) -> Iterator[ElevenLabsClient]:
    """An `ElevenLabsClient` talking to the emulator in-process."""
    from callsid_resolver import ElevenLabsClient

    api_key = elevenlabs_emulator.api_key or TEST_API_KEY
    with ElevenLabsClient(api_key, transport=elevenlabs_emulator.transport()) as client:
        yield client


@pytest.fixture
async def async_elevenlabs_client(
    elevenlabs_emulator: Emulator,
) -> AsyncIterator[AsyncElevenLabsClient]:
    """An `AsyncElevenLabsClient` talking to the emulator in-process."""
    from callsid_resolver import AsyncElevenLabsClient

    api_key = elevenlabs_emulator.api_key or TEST_API_KEY
    async with AsyncElevenLabsClient(api_key, transport=elevenlabs_emulator.transport()) as client:
        yield client


@pytest.fixture
def call_sid_resolver(elevenlabs_client: ElevenLabsClient) -> CallSidResolver:
    """A `CallSidResolver` with a fresh in-memory cache, on the emulator."""
    from callsid_resolver import CallSidResolver, MemoryCache

    return CallSidResolver(elevenlabs_client, cache=MemoryCache())


@pytest.fixture
def async_call_sid_resolver(async_elevenlabs_client: AsyncElevenLabsClient) -> AsyncCallSidResolver:
    """An `AsyncCallSidResolver` with a fresh in-memory cache, on the emulator."""
    from callsid_resolver import AsyncCallSidResolver, MemoryCache

    return AsyncCallSidResolver(async_elevenlabs_client, cache=MemoryCache())


@pytest.fixture
def elevenlabs_server(elevenlabs_emulator: Emulator) -> Iterator[EmulatorServer]:
    """The emulator served on an ephemeral loopback port (`.base_url`, `.ws_url`)."""
    from callsid_resolver.testing import EmulatorServer

    with EmulatorServer(elevenlabs_emulator, host="127.0.0.1", port=0) as server:
        yield server
