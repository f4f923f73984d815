"""RedisCache against the real Redis on loopback (started by .ci/run): the cache contract, TTLs,
the fleet lock, the tiered setup, and the resolver's cross-process single flight."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio
import redis.cluster

from callsid_resolver import (
    AsyncCallSidResolver,
    AsyncElevenLabsClient,
    AsyncRedisCache,
    CallSidResolver,
    ElevenLabsClient,
    MemoryCache,
    RedisCache,
    TieredCache,
)
from callsid_resolver._cache import flight_lock
from callsid_resolver._core._keys import Keys
from callsid_resolver._redis_support import is_cluster, redis_errors, redis_reason

from .conftest import API_KEY, FakeApi, make_conversation, sid_of
from .test_cache import HIT, MISS

REDIS_URL = "redis://127.0.0.1:6379/0"


class TestRedisCache:
    """What only the Redis backends do; the contract every backend keeps is in
    test_cache_contract.py."""

    @pytest.fixture(autouse=True)
    def _setup(self, rclient: redis.Redis, namespace: str) -> None:
        self.rclient, self.keys = rclient, Keys(namespace)

    def test_entries_carry_their_ttl_to_the_millisecond(self) -> None:
        cache = RedisCache(self.rclient, ttl=3600)
        hit, miss = self.keys.sid(sid_of(1)), self.keys.sid(sid_of(2))
        cache.set_many({hit: HIT})
        cache.set_many({miss: MISS}, ttl=30)
        assert 3590_000 < self.rclient.pttl(hit) <= 3600_000
        assert 29_000 < self.rclient.pttl(miss) <= 30_000

    def test_a_lock_carries_its_ttl(self) -> None:
        key = self.keys.lock(sid_of(1))
        assert RedisCache(self.rclient).claim(key, 20) is not None
        assert 19_000 < self.rclient.pttl(key) <= 20_000

    def test_foreign_values_read_as_misses(self) -> None:
        key = self.keys.sid(sid_of(1))
        self.rclient.set(key, b"\x00not json")
        assert RedisCache(self.rclient).get_many([key]) == [None]

    def test_entries_are_stored_without_their_defaults(self) -> None:
        key = self.keys.sid(sid_of(1))
        RedisCache(self.rclient).set_many({key: MISS})
        assert json.loads(self.rclient.get(key) or b"") == {
            "call_sid": MISS.call_sid,
            "conversation_id": None,
        }

    def test_nonsense_ttls_are_refused(self) -> None:
        for ttl in (0, -1, float("nan")):
            with pytest.raises(ValueError, match="positive"):
                RedisCache(self.rclient, ttl=ttl)

    def test_the_repr_names_no_server(self) -> None:
        secret = redis.Redis.from_url("redis://:hunter2@127.0.0.1:6379/0")
        try:
            shown = repr(TieredCache(MemoryCache(), RedisCache(secret, ttl=60)))
        finally:
            secret.close()
        assert "hunter2" not in shown
        assert "6379" not in shown
        assert "RedisCache ttl=60" in shown


async def test_async_redis_cache_entries_carry_their_ttl(
    arclient: redis.asyncio.Redis, namespace: str
) -> None:
    key = Keys(namespace).sid(sid_of(1))
    await AsyncRedisCache(arclient, ttl=60).set_many({key: HIT})
    assert 59_000 < await arclient.pttl(key) <= 60_000


def test_tiered_cache_reads_through_and_keeps_misses_out_of_the_front(
    rclient: redis.Redis, namespace: str
) -> None:
    keys = Keys(namespace)
    back = RedisCache(rclient)
    front = MemoryCache()
    tiered = TieredCache(front, back)
    hit, miss, none = keys.sid(sid_of(1)), keys.sid(sid_of(2)), keys.sid(sid_of(3))
    back.set_many({hit: HIT})
    back.set_many({miss: MISS}, ttl=30)
    assert tiered.get_many([hit, miss, none]) == [HIT, MISS, None]
    assert front.get_many([hit, miss]) == [HIT, None]
    assert flight_lock(tiered) is back


def test_redis_errors_are_named_without_their_text() -> None:
    assert issubclass(redis.ConnectionError, redis_errors())
    assert issubclass(redis.exceptions.RedisClusterException, redis_errors())
    exc = redis.ConnectionError("Error 111 connecting to 10.0.0.7:6379. Connection refused.")
    assert redis_reason(exc) == "Redis is unavailable (ConnectionError)"


def test_is_cluster_tells_a_cluster_client(rclient: redis.Redis) -> None:
    assert not is_cluster(rclient)
    assert is_cluster(redis.cluster.RedisCluster.__new__(redis.cluster.RedisCluster))


def test_resolvers_sharing_redis_share_mappings(
    rclient: redis.Redis, namespace: str, api: FakeApi
) -> None:
    api.add(*(make_conversation(i) for i in range(20)))
    transport = httpx.MockTransport(api)
    with (
        ElevenLabsClient(API_KEY, transport=transport) as a,
        ElevenLabsClient(API_KEY, transport=transport) as b,
    ):
        first = CallSidResolver(a, cache=RedisCache(rclient), namespace=namespace)
        second = CallSidResolver(b, cache=RedisCache(rclient), namespace=namespace)
        assert first.resolve(sid_of(4)).source == "filter"
        api.counts.clear()
        r = second.resolve(sid_of(4))
    assert (r.source, r.requests) == ("cache", 0)
    assert api.counts.total() == 0
    assert rclient.exists(Keys(namespace).sid(sid_of(4)))


def test_threads_of_separate_resolvers_make_one_upstream_lookup(
    rclient: redis.Redis, namespace: str, api: FakeApi
) -> None:
    """Separate resolvers share nothing in-process, so only the Redis lock can collapse them."""
    api.add(*(make_conversation(i) for i in range(150)))
    api.filter_mode = "reject"
    gate = threading.Barrier(8)
    results: list[Any] = []

    def worker() -> None:
        with ElevenLabsClient(API_KEY, transport=httpx.MockTransport(api)) as client:
            resolver = CallSidResolver(client, cache=RedisCache(rclient), namespace=namespace)
            gate.wait()
            results.append(resolver.resolve(sid_of(60)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.conversation_id for r in results} == {f"conv_test{60:023d}"}
    (leader,) = [r for r in results if r.requests > 0]
    # One lookup: rejected filter, live, one page (and, when every read of that page started
    # before the match came back, the next page listed ahead), every request its own.
    assert api.counts["list"] in (3, 4)
    assert api.counts.total() == leader.requests


async def test_async_resolvers_share_one_lookup_through_redis(
    arclient: redis.asyncio.Redis, namespace: str, api: FakeApi
) -> None:
    api.add(*(make_conversation(i) for i in range(30)))
    clients = [AsyncElevenLabsClient(API_KEY, transport=httpx.MockTransport(api)) for _ in range(5)]
    resolvers = [
        AsyncCallSidResolver(c, cache=AsyncRedisCache(arclient), namespace=namespace)
        for c in clients
    ]
    results = await asyncio.gather(*(r.resolve(sid_of(9)) for r in resolvers for _ in range(10)))
    for c in clients:
        await c.aclose()
    assert {r.conversation_id for r in results} == {f"conv_test{9:023d}"}
    assert api.counts == {"list": 1, "get": 1}
    assert await arclient.exists(Keys(namespace).sid(sid_of(9)))
    assert await arclient.exists(Keys(namespace).lock(sid_of(9))) == 0  # released
