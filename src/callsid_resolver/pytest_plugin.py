"""pytest plugin: an offline ElevenLabs for your tests (entry point `pytest11`).

Fixtures: `elevenlabs_emulator` (the `Emulator`, in-process), `elevenlabs_client` and
`async_elevenlabs_client` (clients wired to it, no sockets), `call_sid_resolver` and
`async_call_sid_resolver` (resolvers with a fresh in-memory cache), and `elevenlabs_server` (the
same emulator served on a loopback port, for WebSockets or another process).

Choose the data with the marker::

    @pytest.mark.callsid_resolver(recording="default", synthetic=1000, seed=7, filter_mode="ignore",
                                  profile="observed")

and a suite-wide profile with the ini option `callsid_resolver_profile = observed`.

The async fixtures are plain (synchronous) fixtures that hand out async objects, so they work in
an `asyncio` test under pytest-asyncio's strict or auto mode and under anyio alike, with no async
fixture for any plugin to drive. No fixture ever reaches the real API: the clients' HTTP goes to
the emulator in-process, and their `base_url` is the served emulator when the test also uses
`elevenlabs_server`, else `NO_NETWORK_URL`, a host that can never resolve (RFC 6761 `.invalid`).

Nothing heavy is imported until a fixture is used, so the plugin costs nothing to test runs that
do not use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from types import ModuleType

    from callsid_resolver import (
        AsyncCallSidResolver,
        AsyncElevenLabsClient,
        CallSidResolver,
        ElevenLabsClient,
    )
    from callsid_resolver.testing import Emulator, EmulatorServer

__all__ = [
    "INSTALL_HINT",
    "MARKER",
    "MARKER_ARGS",
    "NO_NETWORK_URL",
    "PROFILE_INI",
    "TEST_API_KEY",
    "async_call_sid_resolver",
    "async_elevenlabs_client",
    "call_sid_resolver",
    "elevenlabs_client",
    "elevenlabs_emulator",
    "elevenlabs_server",
    "pytest_addoption",
    "pytest_configure",
]

# The emulator accepts any non-empty key unless told otherwise; this one is obviously fake.
TEST_API_KEY = "test-key-callsid-resolver"
MARKER = "callsid_resolver"
PROFILE_INI = "callsid_resolver_profile"
# What the in-process clients' WebSockets would dial: a name no resolver answers (RFC 6761 §6.4),
# saying in the error what to do instead.
NO_NETWORK_URL = "http://in-process-emulator.use-the-elevenlabs-server-fixture.invalid"
MARKER_ARGS = ("recording", "synthetic", "seed", "filter_mode", "api_key", "profile")
INSTALL_HINT = (
    "the callsid_resolver fixtures need the emulator: pip install 'callsid-resolver[testing]' "
    "(missing: {name})"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Registers the ini option that sets the emulator profile for a whole suite."""
    parser.addini(
        PROFILE_INI,
        "emulator profile of the callsid_resolver fixtures: documented (default), observed, or "
        "the path of a profile file written by 'callsid-resolver doctor --json'",
        default="documented",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Registers the `callsid_resolver` marker."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(recording='default', synthetic=0, seed=0, filter_mode=None, api_key=None, "
        "profile=None): the data and behaviour of the ElevenLabs emulator fixtures",
    )


def _testing() -> ModuleType:
    """`callsid_resolver.testing`, or a failed test saying which extra to install."""
    try:
        import callsid_resolver.testing as testing
    except ModuleNotFoundError as exc:
        missing = (exc.name or "?").split(".")[0]
    else:
        return testing
    # Outside the `except`, so the report is the hint alone, not an import traceback.
    pytest.fail(INSTALL_HINT.format(name=missing), pytrace=False)


@pytest.fixture
def elevenlabs_emulator(request: pytest.FixtureRequest) -> Emulator:
    """An ElevenLabs emulator loaded from a bundled recording (marker `callsid_resolver`)."""
    testing = _testing()
    marker = request.node.get_closest_marker(MARKER)
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    unknown = set(options) - set(MARKER_ARGS)
    if unknown:
        raise pytest.UsageError(f"unknown {MARKER} marker argument(s): {sorted(unknown)}")
    profile = options.get("profile") or request.config.getini(PROFILE_INI) or "documented"
    emulator: Emulator = testing.Emulator(
        recording=options.get("recording", "default"),
        api_key=options.get("api_key"),
        profile=profile,
    )
    for conversation in testing.synthetic_conversations(
        options.get("synthetic", 0), seed=options.get("seed", 0)
    ):
        emulator.add_conversation(conversation)
    if options.get("filter_mode") is not None:
        emulator.filter_mode = options["filter_mode"]
    return emulator


def _base_url(request: pytest.FixtureRequest) -> str:
    """The served emulator when this test has one, so sockets reach it; never the real API."""
    if "elevenlabs_server" in request.fixturenames:
        server: EmulatorServer = request.getfixturevalue("elevenlabs_server")
        return server.base_url
    return NO_NETWORK_URL


@pytest.fixture
def elevenlabs_client(
    elevenlabs_emulator: Emulator, request: pytest.FixtureRequest
) -> Iterator[ElevenLabsClient]:
    """An `ElevenLabsClient` talking to the emulator in-process."""
    from callsid_resolver import ElevenLabsClient

    api_key = elevenlabs_emulator.api_key or TEST_API_KEY
    transport = elevenlabs_emulator.transport()
    with ElevenLabsClient(api_key, base_url=_base_url(request), transport=transport) as client:
        yield client


@pytest.fixture
def async_elevenlabs_client(
    elevenlabs_emulator: Emulator, request: pytest.FixtureRequest
) -> Iterator[AsyncElevenLabsClient]:
    """An `AsyncElevenLabsClient` talking to the emulator in-process.

    A synchronous fixture on purpose: it works in any async test (pytest-asyncio strict or auto
    mode, anyio) without an async-fixture plugin; it is closed on a private loop at teardown.
    """
    from callsid_resolver import AsyncElevenLabsClient

    api_key = elevenlabs_emulator.api_key or TEST_API_KEY
    transport = elevenlabs_emulator.transport()
    client = AsyncElevenLabsClient(api_key, base_url=_base_url(request), transport=transport)
    yield client
    # The in-process transport holds no sockets, so closing needs no particular loop.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(client.aclose())
    finally:
        loop.close()


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
    """The emulator served on an ephemeral loopback port (`.base_url`, `.ws_url`).

    A test that uses it gets clients (`elevenlabs_client`, `async_elevenlabs_client`) whose
    `base_url` is this server, so a `MonitorChannel` or `ConversationSession` built on them works.
    """
    testing = _testing()
    with testing.EmulatorServer(elevenlabs_emulator, host="127.0.0.1", port=0) as server:
        yield server
