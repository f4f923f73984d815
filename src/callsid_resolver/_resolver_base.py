"""What the two resolver twins share, free of I/O: the tuning, what was learned about the server,
the warm path, the plan's start, the entries `remember` writes, and the cache-fault count.

`_async/resolver.py` (written by hand) and `_sync/resolver.py` (generated from it) each hold one
`ResolverShared` and do only the I/O around it: the cache, the client, the single flight.
"""

from __future__ import annotations

from datetime import datetime

from ._cache import as_async_cache, async_flight_lock, flight_lock, is_async_cache
from ._core import _api
from ._core._callsid import validate_call_sid
from ._core._hints import NO_HINTS
from ._core._keys import Keys
from ._core._ops import Hints, Plan, ServerCapabilities, Settings
from ._core._plan import resolve_plan
from ._core._store import (
    AsyncResolutionCache,
    CachedMapping,
    ResolutionCache,
)
from ._lookups import Lookups, log_cache_fault
from ._memory import warm_table
from ._models import Resolution
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
        self.keys: Keys = settings.keys
        self.capabilities = ServerCapabilities()
        self.cache_faults = 0
        self.lookups = Lookups(settings.keys)
        self.tool_calls = ToolCallMemo()
        self.warm_entries, self.warm_clock = warm_table(cache, settings.keys)

    def warm(self, call_sid: str, hints: Hints) -> Resolution | None:
        """The answer from the in-process cache, before the plan and the single flight: what
        the plan's first step would return, or None to let the plan run (a miss, a cached miss,
        an entry of another agent than the `agent_id` hint names).

        The table holds only validated call SIDs, so a hit needs no validation of `call_sid`.
        """
        table = self.warm_entries
        if table is None:
            return None
        try:
            entry = table.get(call_sid)
        except TypeError:  # unhashable: the plan refuses it
            return None
        if entry is None or entry.conversation_id is None or entry.expires <= self.warm_clock():
            return None
        # The plan's rule for a cached entry and an agent hint (`_Search._of_the_agent`).
        agent_id = None if hints is NO_HINTS else hints.agent_id
        if agent_id is not None and entry.agent_id not in (None, agent_id):
            return None
        return entry.resolution or entry.to_resolution()

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
        return {self.keys.sid(sid): mapping, self.keys.conversation(conversation_id): mapping}

    def forgetting(self, call_sid: str) -> str:
        """The cache key `forget` deletes; a lookup of the SID in flight will not write it back."""
        sid = validate_call_sid(call_sid)
        self.lookups.forgetting(sid)
        return self.keys.sid(sid)

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
