"""RedisCache against the real Redis on loopback (started by .ci/run): the cache contract, TTLs,
the fleet lock, the tiered setup, and the resolver's cross-process single flight."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
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
    CallSidResolver,
    ElevenLabsClient,
    MemoryCache,
    RedisCache,
    ResolutionCache,
    TieredCache,
)
from callsid_resolver._core._keys import Keys as CacheKeys

from .conftest import API_KEY, FakeApi, make_conversation, sid_of
from .test_cache import HIT, MISS, CacheContract

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def rclient() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail("Redis is not running on 127.0.0.1:6379 (bash .ci/run starts it)")
    yield client
    client.close()


@pytest.fixture
async def arclient() -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


class TestRedisCache(CacheContract):
    @pytest.fixture(autouse=True)
    def _setup(self, rclient: redis.Redis, namespace: str) -> None:
        self.rclient, self.ns = rclient, namespace

    def make(self) -> ResolutionCache:
        return _Prefixed(RedisCache(self.rclient), self.ns)

    def test_entries_carry_their_ttl(self) -> None:
        cache = RedisCache(self.rclient, ttl=3600)
        cache.set_many({f"{self.ns}:hit": HIT})
        cache.set_many({f"{self.ns}:miss": MISS}, ttl=30)
        assert 3590_000 < self.rclient.pttl(f"{self.ns}:hit") <= 3600_000
        assert 29_000 < self.rclient.pttl(f"{self.ns}:miss") <= 30_000

    def test_foreign_values_read_as_misses(self) -> None:
        self.rclient.set(f"{self.ns}:junk", b"\x00not json")
        assert RedisCache(self.rclient).get_many([f"{self.ns}:junk"]) == [None]

    def test_a_lock_is_exclusive_and_only_its_holder_frees_it(self) -> None:
        cache, key = RedisCache(self.rclient), f"{self.ns}:lock"
        token = cache.claim(key, 10)
        assert token is not None
        assert cache.claim(key, 10) is None
        cache.release(key, "someone-else")
        assert cache.claim(key, 10) is None
        cache.release(key, token)
        assert cache.claim(key, 10) is not None

    def test_a_lock_expires_so_a_crashed_holder_blocks_nobody(self) -> None:
        cache, key = RedisCache(self.rclient), f"{self.ns}:lock"
        assert cache.claim(key, 0.05) is not None
        self.rclient.pexpire(key, 1)
        threading.Event().wait(0.01)
        assert cache.claim(key, 10) is not None


class _Prefixed:
    """Keeps the contract suite's bare keys inside the test's namespace."""

    def __init__(self, cache: RedisCache, ns: str) -> None:
        self.cache, self.ns = cache, ns

    def get_many(self, keys: Any) -> Any:
        return self.cache.get_many([f"{self.ns}:{k}" for k in keys])

    def set_many(
        self, items: Any, ttl: float | None = None, *, only_if_absent: bool = False
    ) -> None:
        prefixed = {f"{self.ns}:{k}": v for k, v in items.items()}
        self.cache.set_many(prefixed, ttl, only_if_absent=only_if_absent)

    def delete(self, key: str) -> None:
        self.cache.delete(f"{self.ns}:{key}")


def test_tiered_cache_reads_through_and_keeps_misses_out_of_the_front(
    rclient: redis.Redis, namespace: str
) -> None:
    back = RedisCache(rclient)
    front = MemoryCache()
    tiered = TieredCache(front, back)
    hit, miss = f"{namespace}:hit", f"{namespace}:miss"
    back.set_many({hit: HIT})
    back.set_many({miss: MISS}, ttl=30)
    assert tiered.get_many([hit, miss, f"{namespace}:none"]) == [HIT, MISS, None]
    assert front.get_many([hit, miss]) == [HIT, None]
    assert tiered.claim(f"{namespace}:lock", 5) is not None


async def test_async_redis_cache_round_trip_and_lock(
    arclient: redis.asyncio.Redis, namespace: str
) -> None:
    cache = AsyncRedisCache(arclient, ttl=60)
    await cache.set_many({f"{namespace}:a": HIT})
    assert await cache.get_many([f"{namespace}:a", f"{namespace}:b"]) == [HIT, None]
    token = await cache.claim(f"{namespace}:lock", 5)
    assert token is not None
    assert await cache.claim(f"{namespace}:lock", 5) is None
    await cache.release(f"{namespace}:lock", token)
    await cache.delete(f"{namespace}:a")
    assert await AsyncTieredCache(MemoryCache(), cache).get_many([f"{namespace}:a"]) == [None]


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
    assert rclient.exists(CacheKeys(namespace).sid(sid_of(4)))


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
    assert await arclient.exists(CacheKeys(namespace).sid(sid_of(9)))
    assert await arclient.exists(CacheKeys(namespace).lock(sid_of(9))) == 0  # released
