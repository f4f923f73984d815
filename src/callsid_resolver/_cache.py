"""Where resolutions are remembered: the `ResolutionCache` protocol and the in-process backends.

A cache maps string keys to `CachedMapping` values with a TTL per entry. The resolver writes two
kinds of keys, both namespaced and versioned (`CacheKeys`), so that a change of the stored shape
never reads an old one:

* `<ns>:v1:sid:{<call_sid>}` → the conversation of that call, or a negative entry ("not found as
  of now", `conversation_id=None`) that lives only `negative_ttl` seconds;
* `<ns>:v1:conv:{<conversation_id>}` → the call SID a conversation carries (None for a finished
  web conversation), which lets a scan skip conversations it has already read.

A mapping from a call SID to its conversation never changes, so positive entries can live long.
The id in braces is a Redis Cluster hash tag: a SID's entry and its lock share one slot, and
every key family spreads over the cluster by id, never by namespace.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from ._core._keys import Keys
from ._core._store import (
    AsyncResolutionCache,
    CachedMapping,
    ResolutionCache,
)

__all__ = [
    "AsyncResolutionCache",
    "CacheKeys",
    "CachedMapping",
    "MemoryCache",
    "NullCache",
    "ResolutionCache",
    "SharedFlight",
]

T = TypeVar("T")


@runtime_checkable
class SharedFlight(Protocol):
    """A cache that can also lock a key across processes (Redis): one process of a fleet looks
    a SID up while the others wait for its answer in the cache."""

    def claim(self, key: str, ttl: float) -> Any:  # a token, None when held (or awaitable)
        """Claim `key` for `ttl` seconds: a token if this caller got it, None if another holds it
        (a coroutine's result for the async caches).
        """
        ...

    def release(self, key: str, token: str) -> Any:
        """Release `key` if `token` still holds it (a claim that expired is left alone)."""
        ...


CacheKeys = Keys  # the key scheme moved to `_core._keys`; C/E settle the public name


class NullCache:
    """Remembers nothing: every resolution goes to the API (single flight still applies)."""

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
        return None

    def delete(self, key: str) -> None:
        """Do nothing: nothing is ever stored."""
        return None


class _BlockingCacheAdapter:
    """Lets the async resolver use a blocking backend (fine for memory; avoid for network I/O)."""

    def __init__(self, cache: ResolutionCache) -> None:
        self.wrapped = cache
        if isinstance(cache, SharedFlight):
            self.claim, self.release = _awaitable(cache.claim), _awaitable(cache.release)

    async def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
        return self.wrapped.get_many(keys)

    async def set_many(
        self,
        items: Mapping[str, CachedMapping],
        ttl: float | None = None,
        *,
        only_if_absent: bool = False,
    ) -> None:
        if only_if_absent:
            self.wrapped.set_many(items, ttl, only_if_absent=True)
        else:
            self.wrapped.set_many(items, ttl)

    async def delete(self, key: str) -> None:
        self.wrapped.delete(key)


def _awaitable(function: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    async def call(*args: Any) -> T:
        return function(*args)

    return call


def as_async_cache(cache: ResolutionCache | AsyncResolutionCache) -> AsyncResolutionCache:
    """`cache` itself when it is async, else wrapped so that the async resolver can await it."""
    if inspect.iscoroutinefunction(cache.get_many):
        return cache  # type: ignore[return-value]
    return _BlockingCacheAdapter(cache)  # type: ignore[arg-type]


# Last: `_memory` builds on the names above; `MemoryCache` stays importable from here.
from ._memory import MemoryCache  # noqa: E402
