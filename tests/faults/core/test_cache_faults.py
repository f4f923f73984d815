"""Cache faults (issue #15 item 8): a real Redis of the test's own, killed mid-run and restarted,
or refusing writes (maxmemory). A lookup goes on without the cache and still answers;
`remember`/`forget` raise `CacheUnavailable`; nothing raw from redis-py reaches the caller."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio

from callsid_resolver import (
    AsyncCallSidResolver,
    AsyncElevenLabsClient,
    AsyncRedisCache,
    AsyncTieredCache,
    CacheUnavailable,
    CallSidResolver,
    ElevenLabsClient,
    MemoryCache,
    RedisCache,
    TieredCache,
)
from callsid_resolver.webhooks import mapping_from_outbound_call

from ...conftest import API_KEY, FakeApi, make_conversation, sid_of
from ...redis_server import RedisServer

CONV = f"conv_test{7:023d}"


@pytest.fixture
def rclient(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=2, socket_connect_timeout=2)
    yield client
    client.close()


@pytest.fixture
def populated(api: FakeApi) -> FakeApi:
    api.add(*(make_conversation(i) for i in range(12)))
    return api


class KillOnFirstGet:
    """The API, killing Redis when the lookup is in flight: after the cache was read and the
    list fetched, before what the lookup learned is written."""

    def __init__(self, api: FakeApi, server: RedisServer) -> None:
        self.api, self.server = api, server
        self.killed = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            if "/conversations/" in request.url.path and not self.killed.is_set():
                self.server.kill()
                self.killed.set()
        return self.api(request)


def _sync_client(api: Any) -> ElevenLabsClient:
    return ElevenLabsClient(API_KEY, transport=httpx.MockTransport(api))


def test_redis_killed_mid_lookup_still_answers_then_recovers(
    redis_server: RedisServer,
    rclient: redis.Redis,
    populated: FakeApi,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = KillOnFirstGet(populated, redis_server)
    with _sync_client(handler) as client:
        resolver = CallSidResolver(client, cache=RedisCache(rclient))
        with caplog.at_level(logging.WARNING, "callsid_resolver"):
            found = resolver.resolve(sid_of(7))
        assert handler.killed.is_set()
        assert found.conversation_id == CONV
        assert resolver.cache_faults >= 1  # the write of what the lookup learned
        assert "resolving without the cache" in caplog.text
        # Down: every lookup goes to the API, and answers.
        assert resolver.resolve(sid_of(3)).source != "cache"
        with pytest.raises(CacheUnavailable) as info:
            resolver.remember(sid_of(99), "conv_primed")
        assert info.value.operation == "remember"
        assert isinstance(info.value.__cause__, redis.ConnectionError)
        with pytest.raises(CacheUnavailable):
            resolver.forget(sid_of(7))
        with pytest.raises(CacheUnavailable):  # not remembered: the next tool call writes again
            resolver.remember_tool_call(sid_of(97), "conv_tool")
        outbound = {"success": True, "conversation_id": "conv_out", "callSid": sid_of(98)}
        learned = mapping_from_outbound_call(outbound, agent_id="agent_1")
        assert learned is not None
        with pytest.raises(CacheUnavailable):
            resolver.remember(*learned)
        # Back up (empty: no persistence): the cache fills and answers again.
        redis_server.start()
        faults = resolver.cache_faults
        assert resolver.resolve(sid_of(7)).source != "cache"
        assert resolver.resolve(sid_of(7)).source == "cache"
        assert resolver.cache_faults == faults
        resolver.remember(sid_of(99), "conv_primed")
        assert resolver.resolve(sid_of(99)).conversation_id == "conv_primed"
        assert resolver.remember_tool_call(sid_of(97), "conv_tool").written
        assert resolver.resolve(sid_of(97)).conversation_id == "conv_tool"


def test_a_write_refused_by_redis_keeps_the_answer(
    redis_server: RedisServer, rclient: redis.Redis, populated: FakeApi
) -> None:
    rclient.config_set("maxmemory", "1")
    rclient.config_set("maxmemory-policy", "noeviction")
    with _sync_client(populated) as client:
        resolver = CallSidResolver(client, cache=RedisCache(rclient))
        assert resolver.resolve(sid_of(5)).conversation_id == f"conv_test{5:023d}"
        assert resolver.cache_faults >= 2  # the lock (SET NX) and the write: OutOfMemoryError
        with pytest.raises(CacheUnavailable) as info:
            resolver.remember(sid_of(99), "conv_primed")
        assert isinstance(info.value.__cause__, redis.exceptions.OutOfMemoryError)


def test_tiered_cache_keeps_serving_from_memory_with_redis_down(
    redis_server: RedisServer, rclient: redis.Redis, populated: FakeApi
) -> None:
    redis_server.kill()
    with _sync_client(populated) as client:
        resolver = CallSidResolver(client, cache=TieredCache(MemoryCache(), RedisCache(rclient)))
        first = resolver.resolve(sid_of(4))
        lists = populated.counts["list"]
        assert resolver.resolve(sid_of(4)).source == "cache"
        assert populated.counts["list"] == lists
    assert first.conversation_id == f"conv_test{4:023d}"


def test_eight_fleet_waiters_look_up_directly_when_redis_dies(
    redis_server: RedisServer, rclient: redis.Redis, populated: FakeApi
) -> None:
    """Separate resolvers (a fleet): one holds the Redis lock, seven wait on it; Redis dies while
    the holder is looking up. Before: 8 of 8 raised redis.ConnectionError."""
    populated.filter_mode = "reject"
    handler = KillOnFirstGet(populated, redis_server)
    gate = threading.Barrier(8)
    results: list[Any] = []

    def worker() -> None:
        with _sync_client(handler) as client:
            resolver = CallSidResolver(client, cache=RedisCache(rclient))
            gate.wait()
            try:
                results.append(resolver.resolve(sid_of(7)).conversation_id)
            except Exception as exc:  # recorded, so that the assertion shows it
                results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert handler.killed.is_set()
    assert results == [CONV] * 8


async def test_async_fleet_with_redis_killed_mid_run(
    redis_server: RedisServer, populated: FakeApi
) -> None:
    populated.filter_mode = "reject"
    handler = KillOnFirstGet(populated, redis_server)
    arclient = redis.asyncio.Redis.from_url(redis_server.url, socket_timeout=2)
    clients = [
        AsyncElevenLabsClient(API_KEY, transport=httpx.MockTransport(handler)) for _ in range(8)
    ]
    resolvers = [AsyncCallSidResolver(c, cache=AsyncRedisCache(arclient)) for c in clients]
    try:
        results = await asyncio.gather(
            *(r.resolve(sid_of(7)) for r in resolvers), return_exceptions=True
        )
        assert handler.killed.is_set()
        assert [getattr(r, "conversation_id", r) for r in results] == [CONV] * 8
        with pytest.raises(CacheUnavailable):
            await resolvers[0].remember(sid_of(99), "conv_primed")
        with pytest.raises(CacheUnavailable):
            await resolvers[0].forget(sid_of(7))
        with pytest.raises(CacheUnavailable):
            await resolvers[0].remember_tool_call(sid_of(97), "conv_tool")
        tiered = AsyncCallSidResolver(
            clients[0], cache=AsyncTieredCache(MemoryCache(), AsyncRedisCache(arclient))
        )
        assert (await tiered.resolve(sid_of(2))).source != "cache"
        assert (await tiered.resolve(sid_of(2))).source == "cache"
        assert tiered.cache_faults >= 1
    finally:
        for c in clients:
            await c.aclose()
        await arclient.aclose()
