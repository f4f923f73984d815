"""The async client's behaviour does not depend on its backend: each test runs over httpx's own
pool and over aiohttp (`backend="aiohttp"`, extra `[aiohttp]`), against the emulator and the
misbehaving servers of the fault tests on loopback (aiohttp cannot take a mock transport)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from callsid_resolver import (
    AsyncCallSidResolver,
    AsyncElevenLabsClient,
    AuthenticationFailed,
    DeadlineExceeded,
    MemoryCache,
    NotFound,
    RateLimited,
    ResponseTooLarge,
    RetryPolicy,
    ServerError,
    TransportError,
)
from callsid_resolver.testing import Emulator, EmulatorServer

from .faults.core.servers import Connection, FaultServer

KEY = "sk_backend_test"
FAST = RetryPolicy(backoff_initial=0.001, backoff_max=0.01)
BACKENDS = [
    "httpx",
    pytest.param(
        "aiohttp",
        marks=pytest.mark.skipif(
            not __import__("importlib").util.find_spec("httpx_aiohttp"),
            reason="the [aiohttp] extra is not installed",
        ),
    ),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(recording="default", api_key=KEY)


@pytest.fixture
def server(emulator: Emulator) -> Iterator[EmulatorServer]:
    with EmulatorServer(emulator) as served:
        yield served


@pytest.fixture
async def client(server: EmulatorServer, backend: Any) -> AsyncIterator[AsyncElevenLabsClient]:
    async with AsyncElevenLabsClient(
        KEY, base_url=server.base_url, backend=backend, retry=FAST
    ) as c:
        yield c


async def test_the_backend_is_the_one_asked_for(
    client: AsyncElevenLabsClient, backend: str
) -> None:
    transport = type(client._http._transport).__name__
    assert transport == {"httpx": "ShardedTransport", "aiohttp": "AiohttpTransport"}[backend]


async def test_list_sends_repeated_filters_and_pages_follow_cursors(
    client: AsyncElevenLabsClient, emulator: Emulator
) -> None:
    page = await client.list_conversations(
        page_size=2, exclude_statuses=["failed", "in-progress"], sort_direction="desc"
    )
    sent = emulator.requests[-1].params
    assert [v for k, v in sent if k == "exclude_statuses"] == ["failed", "in-progress"]
    assert len(page.conversations) == 2
    emulator.reset_counts()
    ids = [c.conversation_id async for c in client.iter_conversations(page_size=2)]
    assert len(ids) == len(set(ids)) == len(emulator.store)
    assert emulator.count("list") == -(-len(ids) // 2)


async def test_get_signed_url_and_a_resolution(
    client: AsyncElevenLabsClient, emulator: Emulator
) -> None:
    newest = (await client.list_conversations(page_size=1)).conversations[0]
    conversation = await client.get_conversation(newest.conversation_id)
    assert conversation.conversation_id == newest.conversation_id
    signed = await client.get_signed_url(conversation.agent_id)
    assert signed.signed_url.startswith("ws")
    phone = next(c for c in emulator.store.ordered()[1] if c["metadata"].get("phone_call"))
    sid = phone["metadata"]["phone_call"]["call_sid"]
    resolution = await AsyncCallSidResolver(client, cache=MemoryCache()).resolve(sid)
    assert resolution.conversation_id == phone["conversation_id"]


async def test_errors_map_to_the_same_classes(
    client: AsyncElevenLabsClient, emulator: Emulator, server: EmulatorServer, backend: Any
) -> None:
    with pytest.raises(NotFound):
        await client.get_conversation("conv_00000000000000000000000000")
    async with AsyncElevenLabsClient("sk_wrong", base_url=server.base_url, backend=backend) as bad:
        with pytest.raises(AuthenticationFailed) as info:
            await bad.list_conversations()
    assert "sk_wrong" not in str(info.value)
    emulator.inject(429, retry_after="0", times=FAST.max_attempts)
    with pytest.raises(RateLimited) as limited:
        await client.list_conversations()
    assert limited.value.attempts == FAST.max_attempts
    emulator.inject(503, times=FAST.max_attempts)
    with pytest.raises(ServerError):
        await client.list_conversations()


async def test_faults_are_retried_then_succeed(
    client: AsyncElevenLabsClient, emulator: Emulator
) -> None:
    emulator.inject(429, retry_after="0")
    emulator.inject(502)
    emulator.inject(drop=True)
    emulator.reset_counts()
    assert (await client.list_conversations(page_size=1)).conversations
    assert emulator.count("list") == 4


async def test_a_refused_connection_is_a_transport_error_without_the_key(backend: Any) -> None:
    with FaultServer(lambda conn: None) as closed:
        url = closed.url
    async with AsyncElevenLabsClient(KEY, base_url=url, backend=backend, retry=FAST) as client:
        with pytest.raises(TransportError) as info:
            await client.list_conversations()
    assert info.value.attempts == FAST.max_attempts
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value.__cause__)


def _trickle(conn: Connection) -> None:
    conn.trickle(100_000, 0.25)


async def test_the_deadline_bounds_a_trickled_body(backend: Any) -> None:
    with FaultServer(_trickle) as server:
        async with AsyncElevenLabsClient(
            KEY, base_url=server.url, backend=backend, retry=RetryPolicy(deadline=1.5)
        ) as client:
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded):
                await client.get_conversation("conv_slow")
            assert time.monotonic() - started < 1.5 + 0.75


async def test_an_oversized_body_stops_at_the_cap(backend: Any) -> None:
    huge = b'{"signed_url": "' + b"x" * 100_000 + b'"}'
    with FaultServer(lambda c: c.answer(200, huge)) as server:
        async with AsyncElevenLabsClient(KEY, base_url=server.url, backend=backend) as client:
            with pytest.raises(ResponseTooLarge):
                await client.get_signed_url("agent_1")


def test_without_the_extra_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "httpx_aiohttp", None)
    with pytest.raises(ImportError, match=r"callsid-resolver\[aiohttp\]"):
        AsyncElevenLabsClient(KEY, backend="aiohttp")
    assert isinstance(AsyncElevenLabsClient(KEY)._http, httpx.AsyncClient)
