"""Hundreds of distinct cold lookups at once through a small pool: all succeed, each with its own
conversation, at most 2 requests each, and never more requests in flight than the pool holds.

The pool timeout is far shorter than the burst and nothing is retried: a request waiting in
httpx's pool would exhaust it (without the bound, 295 of these 300 lookups fail with
`PoolTimeout`; issue #16 measured 980 of 1,000), one waiting for the client's own slot counts
against the call's deadline only. Counts are asserted, never times.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from callsid_resolver import (
    AsyncCallSidResolver,
    AsyncElevenLabsClient,
    CallSidResolver,
    DeadlineExceeded,
    ElevenLabsClient,
    MemoryCache,
    RetryPolicy,
)
from callsid_resolver._shards import ShardedTransport
from callsid_resolver.testing import Emulator, EmulatorServer, synthetic_conversations

from .faults.core.servers import Connection, FaultServer

KEY = "sk_pool_test"
LOOKUPS = 300
POOL = 5
# A pool timeout shorter than the burst (600 requests, 5 at a time, 20 ms each: >= 2.4 s).
TIMEOUT = httpx.Timeout(10.0, pool=0.5)
LIMITS = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
ONCE = RetryPolicy(max_attempts=1)  # a retried PoolTimeout would hide the failure


class PeakEmulator(Emulator):
    """Counts the HTTP requests being served at once, and the most seen."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_flight = self.peak = 0
        self._count_lock = threading.Lock()

    @property
    def app(self) -> Any:
        inner = super().app

        async def counted(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await inner(scope, receive, send)
            with self._count_lock:
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
            try:
                await inner(scope, receive, send)
            finally:
                with self._count_lock:
                    self.in_flight -= 1

        return counted


@pytest.fixture(scope="module")
def history() -> list[dict[str, Any]]:
    return synthetic_conversations(LOOKUPS * 2, seed=16)


@pytest.fixture
def served(history: list[dict[str, Any]]) -> Iterator[tuple[PeakEmulator, EmulatorServer]]:
    emulator = PeakEmulator(history, api_key=KEY)
    emulator.latency = 0.02
    with EmulatorServer(emulator) as server:
        yield emulator, server


def expected(history: list[dict[str, Any]]) -> dict[str, str]:
    """`LOOKUPS` distinct phone-call SIDs and their conversations."""
    calls = {
        c["metadata"]["phone_call"]["call_sid"]: c["conversation_id"]
        for c in history
        if (c["metadata"].get("phone_call") or {}).get("call_sid")
    }
    assert len(calls) >= LOOKUPS
    return dict(list(calls.items())[:LOOKUPS])


async def test_async_burst_of_distinct_cold_lookups_all_succeed(
    served: tuple[PeakEmulator, EmulatorServer], history: list[dict[str, Any]]
) -> None:
    emulator, server = served
    want = expected(history)
    async with AsyncElevenLabsClient(
        KEY, base_url=server.base_url, timeout=TIMEOUT, limits=LIMITS, retry=ONCE
    ) as client:
        assert client.max_in_flight == POOL
        resolver = AsyncCallSidResolver(client, cache=MemoryCache())
        results = await asyncio.gather(*(resolver.resolve(s) for s in want))
        shards = client._http._transport._shards  # type: ignore[attr-defined]
        assert [s.busy for s in shards] == [0] * len(shards)  # every response gave its slot back
    assert {r.call_sid: r.conversation_id for r in results} == want
    assert emulator.total_requests <= 2 * LOOKUPS
    assert 1 < emulator.peak <= POOL


def test_sync_burst_of_distinct_cold_lookups_all_succeed(
    served: tuple[PeakEmulator, EmulatorServer], history: list[dict[str, Any]]
) -> None:
    emulator, server = served
    want = expected(history)
    with ElevenLabsClient(
        KEY, base_url=server.base_url, timeout=TIMEOUT, limits=LIMITS, retry=ONCE
    ) as client:
        resolver = CallSidResolver(client, cache=MemoryCache())
        with ThreadPoolExecutor(max_workers=50) as threads:
            results = list(threads.map(resolver.resolve, want))
    assert {r.call_sid: r.conversation_id for r in results} == want
    assert emulator.total_requests <= 2 * LOOKUPS
    assert 1 < emulator.peak <= POOL


async def test_an_explicit_bound_applies_to_a_callers_transport(
    served: tuple[PeakEmulator, EmulatorServer], history: list[dict[str, Any]]
) -> None:
    emulator, server = served
    want = dict(list(expected(history).items())[:60])
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=50))
    async with AsyncElevenLabsClient(
        KEY, base_url=server.base_url, transport=transport, max_in_flight=3, retry=ONCE
    ) as client:
        resolver = AsyncCallSidResolver(client, cache=MemoryCache())
        results = await asyncio.gather(*(resolver.resolve(s) for s in want))
    assert {r.call_sid: r.conversation_id for r in results} == want
    assert 1 < emulator.peak <= 3


def test_the_bound_defaults_to_the_pool_and_only_to_a_pool_we_build() -> None:
    mock = httpx.MockTransport(lambda r: httpx.Response(200))
    with (
        ElevenLabsClient(KEY) as default,
        ElevenLabsClient(KEY, limits=LIMITS) as sized,
        ElevenLabsClient(KEY, transport=mock) as mocked,
        httpx.Client() as http,
        ElevenLabsClient(KEY, http_client=http) as callers,
        ElevenLabsClient(KEY, limits=httpx.Limits(max_connections=None)) as unbounded,
    ):
        assert (default.max_in_flight, sized.max_in_flight) == (20, POOL)
        assert mocked.max_in_flight is callers.max_in_flight is unbounded.max_in_flight is None
    with pytest.raises(ValueError, match="max_in_flight"):
        ElevenLabsClient(KEY, max_in_flight=0)
    with pytest.raises(ValueError, match="backend"):
        AsyncElevenLabsClient(KEY, backend="curl")  # type: ignore[arg-type]


def _stall(conn: Connection) -> None:
    conn.stop.wait(30)


async def test_async_wait_for_a_slot_ends_at_the_deadline() -> None:
    with FaultServer(_stall) as server:
        async with AsyncElevenLabsClient(
            KEY, base_url=server.url, max_in_flight=1, retry=RetryPolicy(deadline=0.5)
        ) as client:
            results = await asyncio.gather(
                client.get_conversation("conv_a"),
                client.get_conversation("conv_b"),
                return_exceptions=True,
            )
        assert len(server.targets) == 1  # the second call never got a slot
    assert all(isinstance(r, DeadlineExceeded) for r in results), results
    assert sorted(str(r.__cause__)[:16] for r in results) == [  # type: ignore[union-attr]
        "no request slot ",
        "total deadline r",
    ]
    assert all(r.attempts >= 1 for r in results)  # type: ignore[union-attr]


def test_sync_wait_for_a_slot_ends_at_the_deadline() -> None:
    with (
        FaultServer(_stall) as server,
        ElevenLabsClient(
            KEY, base_url=server.url, max_in_flight=1, retry=RetryPolicy(deadline=0.5)
        ) as client,
    ):
        slots = client._in_flight.slots
        assert slots is not None
        # Another thread's request holds the only slot past the deadline.
        with slots, pytest.raises(DeadlineExceeded, match="no request slot of 1") as info:
            client.get_conversation("conv_b")
        assert server.targets == []
    assert info.value.attempts == 1


def test_the_async_pool_is_split_in_small_pools_unless_a_proxy_is_set(
    no_proxy_env: pytest.MonkeyPatch,
) -> None:
    split = ShardedTransport(httpx.Limits(max_connections=5))
    sizes = [s.transport._pool._max_connections for s in split._shards]
    assert sorted(sizes) == [1, 2, 2]
    # One TLS context for every small pool: each loading the CA bundle made a pool of 100 take
    # over a second to build.
    contexts = {id(s.transport._pool._ssl_context) for s in split._shards}
    assert len(contexts) == 1
    assert isinstance(AsyncElevenLabsClient(KEY)._http._transport, ShardedTransport)
    no_proxy_env.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    client = AsyncElevenLabsClient(KEY)
    assert not isinstance(client._http._transport, ShardedTransport)
    assert client.max_in_flight == 20
