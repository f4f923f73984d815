"""What the two resolver twins share, free of I/O: the tuning, what was learned about the server,
the warm table, the plan's start, the entries `remember` writes, and the cache-fault count.

`_async/resolver.py` (written by hand) and `_sync/resolver.py` (generated from it) each hold one
`ResolverShared` and do only the I/O around it: the cache, the client, the single flight.
"""

from __future__ import annotations

from datetime import datetime

from ._cache import as_async_cache, async_flight_lock, flight_lock, is_async_cache
from ._core import _api
from ._core._callsid import validate_call_sid
from ._core._ops import Hints, Plan, ServerCapabilities, Settings
from ._core._plan import resolve_plan
from ._core._store import (
    AsyncResolutionCache,
    CachedMapping,
    ResolutionCache,
)
from ._lookups import Lookups, log_cache_fault
from ._memory import MemoryEntry, warm_table
from ._priming import ToolCallMemo

__all__ = [
    "AsyncResolverCache",
    "Instant",
    "ResolverCache",
    "ResolverShared",
    "as_async_cache",
    "as_blocking_cache",
    "async_flight_lock",
    "flight_lock",
]

Instant = datetime | int | float
"""A `started_after`/`started_before` hint: a timezone-aware `datetime` or unix seconds."""
AsyncResolverCache = ResolutionCache | AsyncResolutionCache
"""What the async resolver accepts as its cache (a blocking one is fine in memory)."""
ResolverCache = ResolutionCache
"""What the blocking resolver accepts as its cache (the name its generated source uses)."""


class ResolverShared:
    """The state and the I/O-free steps of one resolver, sync or async."""

    def __init__(self, cache: object, settings: Settings) -> None:
        self.settings = settings
        self.capabilities = ServerCapabilities()
        self.cache_faults = 0
        self.lookups = Lookups(settings.keys)
        self.tool_calls = ToolCallMemo()
        table, self.warm_clock = warm_table(cache, settings.keys)
        # The in-process table the resolvers' warm path reads (empty: a backend without one).
        self.warm_entries: dict[str, MemoryEntry] = table if table is not None else {}

    def plan(self, sid: str, hints: Hints) -> Plan:
        """The plan of one lookup of `sid` (validated), with what this resolver has learned."""
        return resolve_plan(sid, hints, self.capabilities, self.settings)

    def primed(
        self, call_sid: str, conversation_id: str, agent_id: str | None
    ) -> dict[str, CachedMapping]:
        """The two entries (both directions) that `remember` writes, validated before any I/O."""
        sid = validate_call_sid(call_sid)
        mapping = CachedMapping(
            call_sid=sid,
            conversation_id=_api.validate_conversation_id(conversation_id),
            agent_id=agent_id,
            primed=True,
        )
        return {
            self.settings.keys.sid(sid): mapping,
            self.settings.keys.conversation(conversation_id): mapping,
        }

    def forgetting(self, call_sid: str) -> str:
        """The cache key `forget` deletes; a lookup of the SID in flight will not write it back."""
        sid = validate_call_sid(call_sid)
        self.lookups.forgetting(sid)
        return self.settings.keys.sid(sid)

    def cache_fault(self, operation: str, exc: Exception) -> None:
        """Count and log a cache fault that a lookup goes on without."""
        self.cache_faults += 1
        log_cache_fault(operation, exc)


def as_blocking_cache(cache: ResolutionCache | AsyncResolutionCache) -> ResolutionCache:
    """The blocking resolver's view of its cache: the cache itself, refused when it is an async
    backend (its coroutines would never be awaited). The sync twin of `_cache.as_async_cache`,
    which wraps a blocking backend for the async resolver."""
    if is_async_cache(cache):
        raise TypeError(
            f"{type(cache).__name__} is an asyncio cache: give it to AsyncCallSidResolver, or "
            "give CallSidResolver a blocking one (RedisCache instead of AsyncRedisCache)"
        )
    return cache
