"""One contract for every cache backend, sync and async (cachetools' `CacheTestMixin` idea).

Each case is a backend as a resolver would be given it, on the real Redis on 127.0.0.1:6379
where it has one (under the test's own namespace), and the lock `flight_lock` /
`async_flight_lock` find in it. A blocking backend is called directly (its methods return
values), an async one awaited: `call` tells them apart by the result, so the same test body
drives both. Time is the case's fake clock where the backend takes one; a Redis entry's TTL
passes in real time, so the TTL tests use short real TTLs only where a case holds Redis.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import pytest
import redis
import redis.asyncio

from callsid_resolver import (
    AsyncRedisCache,
    AsyncTieredCache,
    MemoryCache,
    NullCache,
    RedisCache,
    TieredCache,
)
from callsid_resolver._cache import (
    as_async_cache,
    async_flight_lock,
    flight_lock,
    is_async_cache,
)
from callsid_resolver._core._keys import Keys
from callsid_resolver._core._store import (
    AsyncFlightLock,
    AsyncResolutionCache,
    CachedMapping,
    FlightLock,
    ResolutionCache,
)
from callsid_resolver._memory import warm_table

from .conftest import sid_of

T = TypeVar("T")

SID, OTHER = sid_of(1), sid_of(2)
HIT = CachedMapping(
    call_sid=SID,
    conversation_id="conv_1",
    agent_id="agent_1",
    status="done",
    start_time_unix_secs=1_786_000_000,
    primed=True,
    call_ids=("uuid-1", "sip-call-id-1"),
)
MISS = CachedMapping(call_sid=OTHER, conversation_id=None)


class Clock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Case:
    cache: ResolutionCache | AsyncResolutionCache
    keys: Keys
    clock: Clock | None  # the backend's injected clock, when it takes one
    on_redis: bool  # entries (also) live in Redis, whose TTLs pass in real time
    remembers: bool = True
    name: str = ""

    async def pass_time(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.now += seconds
        if self.on_redis:
            await asyncio.sleep(seconds)

    def lock(self) -> FlightLock | AsyncFlightLock | None:
        """The lock a resolver of this case's kind would find."""
        if is_async_cache(self.cache):
            return async_flight_lock(self.cache)
        return flight_lock(self.cache)


async def call(result: T | Awaitable[T]) -> T:
    """A blocking backend's result as it is; an async one's, awaited."""
    if inspect.isawaitable(result):
        return await result
    return result


def _memory(clock: Clock) -> MemoryCache:
    return MemoryCache(ttl=3600, clock=clock)


def _adopted(keys: Keys, clock: Clock) -> MemoryCache:
    cache = _memory(clock)
    warm_table(cache, keys)  # a resolver's keys held by bare id, as a resolver sets it up
    return cache


# name -> (keys, clock, Redis client, async Redis client) -> Case
Build = Callable[[Keys, Clock, redis.Redis, redis.asyncio.Redis], Case]
BACKENDS: dict[str, Build] = {
    "memory": lambda k, c, r, a: Case(_memory(c), k, c, on_redis=False),
    "memory-warm": lambda k, c, r, a: Case(_adopted(k, c), k, c, on_redis=False),
    "null": lambda k, c, r, a: Case(NullCache(), k, None, on_redis=False, remembers=False),
    "redis": lambda k, c, r, a: Case(RedisCache(r, ttl=3600), k, None, on_redis=True),
    "async-redis": lambda k, c, r, a: Case(AsyncRedisCache(a, ttl=3600), k, None, on_redis=True),
    "tiered": lambda k, c, r, a: Case(
        TieredCache(_adopted(k, c), RedisCache(r, ttl=3600)), k, c, on_redis=True
    ),
    "async-tiered": lambda k, c, r, a: Case(
        AsyncTieredCache(_adopted(k, c), AsyncRedisCache(a, ttl=3600)), k, c, on_redis=True
    ),
    "view-memory": lambda k, c, r, a: Case(as_async_cache(_memory(c)), k, c, on_redis=False),
    "view-redis": lambda k, c, r, a: Case(
        as_async_cache(RedisCache(r, ttl=3600)), k, None, on_redis=True
    ),
    "view-tiered": lambda k, c, r, a: Case(
        as_async_cache(TieredCache(_memory(c), RedisCache(r, ttl=3600))), k, c, on_redis=True
    ),
}
LOCKED = {"redis", "async-redis", "tiered", "async-tiered", "view-redis", "view-tiered"}


@pytest.fixture(params=sorted(BACKENDS))
def case(
    request: pytest.FixtureRequest,
    namespace: str,
    rclient: redis.Redis,
    arclient: redis.asyncio.Redis,
) -> Case:
    built = BACKENDS[request.param](Keys(namespace), Clock(), rclient, arclient)
    built.name = request.param
    return built


@pytest.fixture(params=sorted(LOCKED))
def locked(
    request: pytest.FixtureRequest,
    namespace: str,
    rclient: redis.Redis,
    arclient: redis.asyncio.Redis,
) -> tuple[Case, FlightLock | AsyncFlightLock]:
    """A case whose backend shares a lock with a fleet, and that lock."""
    built = BACKENDS[request.param](Keys(namespace), Clock(), rclient, arclient)
    lock = built.lock()
    assert lock is not None
    return built, lock


def _expect(case: Case, *values: CachedMapping | None) -> list[CachedMapping | None]:
    return list(values) if case.remembers else [None] * len(values)


async def test_is_the_protocol_of_its_declared_kind(case: Case) -> None:
    if is_async_cache(case.cache):
        assert isinstance(case.cache, AsyncResolutionCache)
        assert inspect.iscoroutinefunction(case.cache.get_many)
        assert as_async_cache(case.cache) is case.cache
    else:
        assert isinstance(case.cache, ResolutionCache)
        assert not inspect.iscoroutinefunction(case.cache.get_many)


async def test_round_trip_keeps_every_field_and_both_directions(case: Case) -> None:
    sid_key, conv_key = case.keys.sid(SID), case.keys.conversation("conv_1")
    await call(case.cache.set_many({sid_key: HIT, conv_key: HIT, case.keys.sid(OTHER): MISS}))
    found = await call(
        case.cache.get_many([sid_key, conv_key, case.keys.sid(OTHER), case.keys.sid(sid_of(3))])
    )
    assert found == _expect(case, HIT, HIT, MISS, None)


async def test_get_many_answers_in_order_and_nothing_for_nothing(case: Case) -> None:
    await call(case.cache.set_many({case.keys.sid(SID): HIT}))
    assert await call(case.cache.get_many([])) == []
    absent, sid = case.keys.sid(sid_of(9)), case.keys.sid(SID)
    assert await call(case.cache.get_many([absent, sid, sid])) == _expect(case, None, HIT, HIT)


async def test_set_many_replaces_an_entry(case: Case) -> None:
    key = case.keys.sid(SID)
    await call(case.cache.set_many({key: MISS}, 30))
    await call(case.cache.set_many({key: HIT}))
    assert await call(case.cache.get_many([key])) == _expect(case, HIT)


async def test_delete_removes_and_ignores_absent_keys(case: Case) -> None:
    key = case.keys.sid(SID)
    await call(case.cache.set_many({key: HIT, case.keys.conversation("conv_1"): HIT}))
    await call(case.cache.delete(key))
    await call(case.cache.delete(case.keys.sid(sid_of(7))))  # never set: no error
    found = await call(case.cache.get_many([key, case.keys.conversation("conv_1")]))
    assert found == _expect(case, None, HIT)


async def test_only_if_absent_writes_absent_keys_and_never_replaces_a_live_one(case: Case) -> None:
    kept, new = case.keys.sid(SID), case.keys.sid(OTHER)
    await call(case.cache.set_many({kept: HIT}))
    await call(case.cache.set_many({kept: MISS, new: MISS}, 30, only_if_absent=True))
    assert await call(case.cache.get_many([kept, new])) == _expect(case, HIT, MISS)


async def test_an_entry_lives_its_own_ttl(case: Case) -> None:
    short, long = case.keys.sid(OTHER), case.keys.sid(SID)
    await call(case.cache.set_many({long: HIT}))
    await call(case.cache.set_many({short: MISS}, 0.05))
    assert await call(case.cache.get_many([short, long])) == _expect(case, MISS, HIT)
    await case.pass_time(0.15)
    assert await call(case.cache.get_many([short, long])) == _expect(case, None, HIT)


async def test_only_if_absent_replaces_an_expired_entry(case: Case) -> None:
    key = case.keys.sid(OTHER)
    await call(case.cache.set_many({key: MISS}, 0.05))
    await case.pass_time(0.15)
    await call(case.cache.set_many({key: HIT}, 30, only_if_absent=True))
    assert await call(case.cache.get_many([key])) == _expect(case, HIT)


async def test_a_lock_exactly_where_a_fleet_can_share_one(case: Case) -> None:
    lock = case.lock()
    assert (lock is not None) is (case.name in LOCKED)
    if lock is not None:
        assert inspect.iscoroutinefunction(lock.claim) is is_async_cache(case.cache)


async def test_a_lock_is_exclusive_and_only_its_holder_frees_it(
    locked: tuple[Case, FlightLock | AsyncFlightLock],
) -> None:
    case, lock = locked
    key = case.keys.lock(SID)
    token = await call(lock.claim(key, 10))
    assert isinstance(token, str)
    assert await call(lock.claim(key, 10)) is None
    await call(lock.release(key, "someone-else"))
    assert await call(lock.claim(key, 10)) is None
    await call(lock.release(key, token))
    again = await call(lock.claim(key, 10))
    assert isinstance(again, str)
    assert again != token
    await call(lock.release(case.keys.lock(OTHER), "never-claimed"))  # no error


async def test_a_lock_expires_so_a_crashed_holder_blocks_nobody(
    locked: tuple[Case, FlightLock | AsyncFlightLock],
) -> None:
    case, lock = locked
    key = case.keys.lock(SID)
    stale = await call(lock.claim(key, 0.05))
    assert stale is not None
    await case.pass_time(0.15)
    successor = await call(lock.claim(key, 10))
    assert successor is not None
    await call(lock.release(key, stale))  # the crashed holder wakes up: it frees nothing
    assert await call(lock.claim(key, 10)) is None
