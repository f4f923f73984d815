"""The seams between the resolvers and a cache backend, typed, and `NullCache`.

A cache maps string keys to `CachedMapping` values with a TTL per entry (the key scheme is
`_core._keys.Keys`; the protocols are in `_core._store`). A resolver asks three things of the
cache it is given, here:

* `as_async_cache(cache)`: the cache as an `AsyncResolutionCache`, a blocking one wrapped (fine
  for memory; a blocking network backend would stall the event loop);
* `flight_lock(cache)` / `async_flight_lock(cache)`: its cross-process lock (`FlightLock`,
  `AsyncFlightLock`), or None when it has none. A tiered cache's lock is its back's; the async
  one wraps a blocking lock when the backend is blocking.

Whether a backend is blocking or async is declared, not guessed: our own backends are listed by
class in `BLOCKING_BACKENDS` and `ASYNC_BACKENDS`. Only a backend of the caller's own, in
neither list, is sorted by `inspect.iscoroutinefunction` on its `get_many` (on its `claim` for
the lock): a duck-typed protocol cannot tell a coroutine function from a plain one at runtime.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

from typing_extensions import TypeIs

from ._async.redis_cache import AsyncRedisCache
from ._async.tiered_cache import AsyncTieredCache
from ._core._store import (
    AsyncFlightLock,
    AsyncResolutionCache,
    CachedMapping,
    FlightLock,
    ResolutionCache,
)
from ._memory import MemoryCache
from ._sync.redis_cache import RedisCache
from ._sync.tiered_cache import TieredCache

__all__ = [
    "ASYNC_BACKENDS",
    "BLOCKING_BACKENDS",
    "AsyncResolutionCache",
    "CachedMapping",
    "MemoryCache",
    "NullCache",
    "ResolutionCache",
    "as_async_cache",
    "async_flight_lock",
    "flight_lock",
    "is_async_cache",
]


class NullCache:
    """Remembers nothing: every resolution goes to the API (single flight still applies)."""

    def __repr__(self) -> str:
        return "<NullCache>"

    def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
        """A None for every key: nothing is ever cached."""
        return [None] * len(keys)

    def set_many(
        self,
        items: Mapping[str, CachedMapping],
        ttl: float | None = None,
        *,
        only_if_absent: bool = False,
    ) -> None:
        """Do nothing: nothing is ever stored."""

    def delete(self, key: str) -> None:
        """Do nothing: nothing is ever stored."""


class BlockingCacheView:
    """A blocking `ResolutionCache` seen as an `AsyncResolutionCache` (what `as_async_cache`
    returns for one); `wrapped` is the backend. It has no lock: see `async_flight_lock`."""

    def __init__(self, wrapped: ResolutionCache) -> None:
        self.wrapped = wrapped

    def __repr__(self) -> str:
        return f"<BlockingCacheView of {self.wrapped!r}>"

    async def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
        """The wrapped cache's `get_many`, run in the calling task."""
        return self.wrapped.get_many(keys)

    async def set_many(
        self,
        items: Mapping[str, CachedMapping],
        ttl: float | None = None,
        *,
        only_if_absent: bool = False,
    ) -> None:
        """The wrapped cache's `set_many`, run in the calling task."""
        if only_if_absent:
            self.wrapped.set_many(items, ttl, only_if_absent=True)
        else:
            # Without the keyword: a backend of the caller's own may predate it.
            self.wrapped.set_many(items, ttl)

    async def delete(self, key: str) -> None:
        """The wrapped cache's `delete`, run in the calling task."""
        self.wrapped.delete(key)


class BlockingLockView:
    """A blocking `FlightLock` seen as an `AsyncFlightLock` (what `async_flight_lock` returns
    for a blocking backend's lock); `wrapped` is the lock."""

    def __init__(self, wrapped: FlightLock) -> None:
        self.wrapped = wrapped

    def __repr__(self) -> str:
        return f"<BlockingLockView of {self.wrapped!r}>"

    async def claim(self, key: str, ttl: float) -> str | None:
        """The wrapped lock's `claim`, run in the calling task."""
        return self.wrapped.claim(key, ttl)

    async def release(self, key: str, token: str) -> None:
        """The wrapped lock's `release`, run in the calling task."""
        self.wrapped.release(key, token)


# Our backends by declared kind. A subclass keeps its class's kind.
BLOCKING_BACKENDS: tuple[type, ...] = (MemoryCache, NullCache, RedisCache, TieredCache)
ASYNC_BACKENDS: tuple[type, ...] = (AsyncRedisCache, AsyncTieredCache, BlockingCacheView)


def is_async_cache(
    cache: ResolutionCache | AsyncResolutionCache,
) -> TypeIs[AsyncResolutionCache]:
    """Whether `cache` is async: by its declared kind, else by its `get_many` (see above)."""
    if isinstance(cache, ASYNC_BACKENDS):
        return True
    if isinstance(cache, BLOCKING_BACKENDS):
        return False
    return inspect.iscoroutinefunction(cache.get_many)


def has_async_lock(lock: FlightLock | AsyncFlightLock) -> TypeIs[AsyncFlightLock]:
    """Whether `lock`'s `claim`/`release` are coroutines: by the backend's declared kind, else
    by its `claim`."""
    if isinstance(lock, ASYNC_BACKENDS):
        return True
    if isinstance(lock, BLOCKING_BACKENDS):
        return False
    return inspect.iscoroutinefunction(lock.claim)


def as_async_cache(cache: ResolutionCache | AsyncResolutionCache) -> AsyncResolutionCache:
    """`cache` itself when it is async, else a `BlockingCacheView` of it for the async resolver."""
    if is_async_cache(cache):
        return cache
    return BlockingCacheView(cache)


def flight_lock(cache: object) -> FlightLock | None:
    """The blocking lock of `cache` for a fleet's single flight, or None: a backend without
    `claim`/`release`, an async one (a blocking resolver cannot await it), or a tiered cache
    whose back has none (a tiered cache's lock is its back's)."""
    if isinstance(cache, TieredCache | AsyncTieredCache):
        return flight_lock(cache.back)
    if isinstance(cache, FlightLock | AsyncFlightLock) and not has_async_lock(cache):
        return cache
    return None


def async_flight_lock(cache: object) -> AsyncFlightLock | None:
    """The lock of `cache` for the async resolver's fleet single flight, or None when it has
    none. A blocking backend's lock comes wrapped (`BlockingLockView`); a tiered cache's lock is
    its back's, and a `BlockingCacheView`'s that of the backend it wraps."""
    if isinstance(cache, TieredCache | AsyncTieredCache):
        return async_flight_lock(cache.back)
    if isinstance(cache, BlockingCacheView):
        return async_flight_lock(cache.wrapped)
    if not isinstance(cache, FlightLock | AsyncFlightLock):
        return None
    if has_async_lock(cache):
        return cache
    return BlockingLockView(cache)
