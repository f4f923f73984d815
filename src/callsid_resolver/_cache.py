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
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict

from ._models import TERMINAL_STATUSES, Conversation, Resolution

__all__ = [
    "AsyncResolutionCache",
    "CacheKeys",
    "CachedMapping",
    "MemoryCache",
    "NullCache",
    "ResolutionCache",
    "SharedFlight",
]

SCHEMA_VERSION = 1
T = TypeVar("T")


class CachedMapping(BaseModel):
    """A call SID ↔ conversation mapping as stored; either side may be None (a known absence)."""

    model_config = ConfigDict(frozen=True)

    call_sid: str | None
    conversation_id: str | None
    agent_id: str | None = None
    status: str | None = None
    start_time_unix_secs: int | None = None
    primed: bool = False  # learned for free (webhook, outbound call, own session), not looked up
    call_ids: tuple[str, ...] = ()  # every id the conversation shows (SIP: UUID and Call-ID)

    def to_resolution(self, requests: int = 0) -> Resolution:
        """This entry as a `Resolution` answered from the cache (`source` "cache" or "primed")."""
        assert self.call_sid is not None
        assert self.conversation_id is not None
        return Resolution(
            call_sid=self.call_sid,
            conversation_id=self.conversation_id,
            agent_id=self.agent_id,
            status=self.status,
            start_time_unix_secs=self.start_time_unix_secs,
            source="primed" if self.primed else "cache",
            requests=requests,
        )


@runtime_checkable
class ResolutionCache(Protocol):
    """A blocking cache backend. `ttl=None` means the backend's default TTL."""

    def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
        """The cached mappings of `keys`, in order; None where a key has no live entry."""
        ...

    def set_many(
        self,
        items: Mapping[str, CachedMapping],
        ttl: float | None = None,
        *,
        only_if_absent: bool = False,
    ) -> None:
        """Store `items` for `ttl` seconds; with `only_if_absent`, skip each key that holds a
        live entry (the resolver writes its misses so, never over a mapping written meanwhile)."""

    def delete(self, key: str) -> None:
        """Remove `key` (no error when it is absent)."""
        ...


@runtime_checkable
class AsyncResolutionCache(Protocol):
    """The asyncio twin of `ResolutionCache`, for backends that do I/O (Redis)."""

    async def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
        """The cached mappings of `keys`, in order; None where a key has no live entry."""
        ...

    async def set_many(
        self,
        items: Mapping[str, CachedMapping],
        ttl: float | None = None,
        *,
        only_if_absent: bool = False,
    ) -> None:
        """Store each mapping of `items` under its key for `ttl` seconds (None: the cache's
        default TTL).
        """
        ...

    async def delete(self, key: str) -> None:
        """Remove `key` (no error when it is absent)."""
        ...


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


@dataclass(frozen=True)
class CacheKeys:
    """Builds the namespaced, versioned keys; one namespace per ElevenLabs workspace is wise."""

    namespace: str = "callsid-resolver"

    def sid(self, call_sid: str) -> str:
        """The key of `call_sid`'s cached mapping."""
        return f"{self.namespace}:v{SCHEMA_VERSION}:sid:{{{call_sid}}}"

    def conversation(self, conversation_id: str) -> str:
        """The key of a conversation's cached mapping."""
        return f"{self.namespace}:v{SCHEMA_VERSION}:conv:{{{conversation_id}}}"

    def lock(self, call_sid: str) -> str:
        """The key of the lock that lets one process resolve `call_sid` at a time."""
        return f"{self.namespace}:v{SCHEMA_VERSION}:lock:{{{call_sid}}}"

    def entries_for(self, conversations: Sequence[Conversation]) -> dict[str, CachedMapping]:
        """The entries that fetched conversations teach us, keyed for `set_many`."""
        out: dict[str, CachedMapping] = {}
        for conv in conversations:
            sid = conv.call_sid
            mapping = CachedMapping(
                call_sid=sid,
                conversation_id=conv.conversation_id,
                agent_id=conv.agent_id,
                status=conv.status,
                start_time_unix_secs=conv.metadata.start_time_unix_secs,
            )
            if sid is not None:
                out[self.sid(sid)] = mapping
                out[self.conversation(conv.conversation_id)] = mapping
            elif conv.status in TERMINAL_STATUSES:
                # A live call may not show its phone record yet; only a finished conversation's
                # lack of a call SID is final.
                out[self.conversation(conv.conversation_id)] = mapping
        return out


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
