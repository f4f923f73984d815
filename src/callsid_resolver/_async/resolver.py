"""`AsyncCallSidResolver`: the driver of the one strategy in `_core._plan`.

One source for both twins: the async module is written by hand and `scripts/unasync.py`
generates the sync one from it. The driver does what the plan cannot: single flight (concurrent
lookups of one call SID share one upstream lookup), the cache's I/O, the client's requests, and
reads with bounded concurrency (`_concurrency`, the one hand-written pair). The I/O-free state
and steps both twins share are `_resolver_base.ResolverShared`.
"""

from __future__ import annotations

import asyncio

from .._async.client import AsyncElevenLabsClient
from .._concurrency import AsyncSleep, FetchOutcome, OnRetry, ReadAnswer, async_parallel_reads
from .._core import _api
from .._core._api import ListQuery
from .._core._callsid import validate_call_sid
from .._core._hints import NO_HINTS, narrow_hints
from .._core._keys import DEFAULT_NAMESPACE, Keys
from .._core._ops import (
    ClaimFlight,
    Fetch,
    ListPage,
    Operation,
    Pause,
    Plan,
    ReadCache,
    Settings,
    WriteCache,
)
from .._core._store import AsyncFlightLock, AsyncResolutionCache
from .._exceptions import ApiError, NotFound
from .._flights import TaskFlights
from .._lookups import caller_cache_fault, without_cache
from .._memory import MemoryCache
from .._models import Resolution
from .._priming import CallRef
from .._resolver_base import (
    AsyncResolverCache,
    Instant,
    ResolverShared,
    as_async_cache,
    async_flight_lock,
)

__all__ = ["AsyncCallSidResolver"]


class AsyncCallSidResolver:
    """Resolves call SIDs to ElevenLabs conversations; one resolver serves a whole process.

    `cache` defaults to a `MemoryCache`; pass a shared one (`AsyncRedisCache`,
    `AsyncTieredCache`) to share mappings and the single flight across processes. `max_scan`
    (1000) bounds how many listed conversations a fallback scan walks through; `concurrency`
    (16) bounds parallel reads; `negative_ttl` (30 s) is how long a miss is remembered (a call
    that just started may not be listed yet, so keep it short); `live_ttl` (15 s) is how long a
    live conversation whose GET showed no call id is not read again while it stays live;
    `use_filter` and `live_first` (True) switch those steps; `namespace` prefixes every cache key
    (one per ElevenLabs workspace when several share a Redis); `sleep` waits between the polls
    for another process's answer. A bad value raises `ValueError`.

    A failing cache (Redis down, out of memory) never fails a lookup: the resolver goes on without
    it, logs a warning and counts the fault in `cache_faults`; only `remember`,
    `remember_tool_call` and `forget`, whose whole point is the cache, raise `CacheUnavailable`.
    """

    def __init__(
        self,
        client: AsyncElevenLabsClient,
        *,
        cache: AsyncResolverCache | None = None,
        max_scan: int = 1000,
        concurrency: int = 16,
        negative_ttl: float = 30.0,
        live_ttl: float = 15.0,
        use_filter: bool = True,
        live_first: bool = True,
        namespace: str = DEFAULT_NAMESPACE,
        sleep: AsyncSleep = asyncio.sleep,
    ) -> None:
        given = cache if cache is not None else MemoryCache()
        self.client = client
        self.cache: AsyncResolutionCache = as_async_cache(given)
        self.flight_lock: AsyncFlightLock | None = async_flight_lock(given)
        settings = Settings(
            max_scan=max_scan,
            concurrency=concurrency,
            negative_ttl=negative_ttl,
            live_ttl=live_ttl,
            use_filter=use_filter,
            live_first=live_first,
            shared_flight=self.flight_lock is not None,
            keys=Keys(namespace),
        )
        self.shared = ResolverShared(given, settings)
        self._warm_entries, self._warm_clock = self.shared.warm_entries, self.shared.warm_clock
        self.settings = settings
        self.capabilities = self.shared.capabilities
        self.sleep = sleep
        self._flights = TaskFlights()

    @property
    def cache_faults(self) -> int:
        """How many cache operations failed during lookups (each logged; the lookup went on)."""
        return self.shared.cache_faults

    async def resolve(
        self,
        call_sid: str,
        *,
        agent_id: str | None = None,
        phone_number_id: str | None = None,
        started_after: Instant | None = None,
        started_before: Instant | None = None,
        initiation_source: str | None = None,
        in_progress: bool = False,
    ) -> Resolution:
        """The conversation of `call_sid`: a Twilio call SID (`system__call_sid`), or a SIP
        call's `call_sid` or Call-ID (`system__call_id`); `Resolution.matched_by` says which.

        The hints narrow what the API lists: `agent_id`, `phone_number_id`,
        `started_after`/`started_before` (a timezone-aware `datetime` or unix seconds) and
        `initiation_source` (the list filter's value: `twilio`, `sip_trunk`, ...).
        `in_progress=True` says the call is going on now (a tool called during the call): only
        the filter and the live step run, never a history scan, and a miss is not cached.

        Raises `InvalidCallSid` or `InvalidHint` before any I/O for bad input, and
        `ConversationNotFound` (saying what was searched, and for a live call how else to learn
        the mapping) when no conversation shows the id.
        """
        hints = (
            NO_HINTS  # the common lookup: nothing to check, nothing to build
            if agent_id is None
            and phone_number_id is None
            and started_after is None
            and started_before is None
            and initiation_source is None
            and in_progress is False
            else narrow_hints(
                agent_id=agent_id,
                phone_number_id=phone_number_id,
                started_after=started_after,
                started_before=started_before,
                initiation_source=initiation_source,
                in_progress=in_progress,
            )
        )
        # The warm path: what the plan's first step would answer from the in-process cache,
        # read inline, before the plan and the single flight (docs/caching.md, "Warm lookups").
        # The table holds only validated call SIDs, so a hit needs no validation of `call_sid`.
        try:
            entry = self._warm_entries.get(call_sid)
        except TypeError:  # unhashable: the plan refuses it below
            entry = None
        if (
            entry is not None
            and entry.conversation_id is not None
            and entry.expires > self._warm_clock()
            # The plan's rule for a cached entry and an agent hint (`_Search._of_the_agent`).
            and (hints.agent_id is None or entry.agent_id in (None, hints.agent_id))
        ):
            return entry.resolution or entry.to_resolution()
        sid = validate_call_sid(call_sid)
        return await self._flights.run(
            (sid, hints), lambda: self._drive(sid, self.shared.plan(sid, hints))
        )

    async def remember(
        self, call_sid: str, conversation_id: str, agent_id: str | None = None
    ) -> None:
        """Record a mapping learned elsewhere (outbound-call response, webhook, own session).

        A `webhooks.LearnedMapping` unpacks into the arguments: `remember(*learned)`.
        Raises `InvalidCallSid`/`InvalidConversationId` before any I/O, and `CacheUnavailable`
        when the cache could not store it.
        """
        entries = self.shared.primed(call_sid, conversation_id, agent_id)
        with caller_cache_fault("remember"):
            await self.cache.set_many(entries)

    async def remember_tool_call(
        self, call_sid: str, conversation_id: str, *, agent_id: str | None = None
    ) -> CallRef:
        """Learn the mapping from the ids a tool call received, for every process on the cache.

        Pass the values of `system__call_sid` (or `system__call_id` on SIP trunks),
        `system__conversation_id` and optionally `system__agent_id` that the platform filled into
        the tool's parameters. Both directions are cached, so a later `resolve()` of the SID in
        any process sharing the cache costs 0 requests. Repeated tool calls of one call write
        the cache once (a small memo of pairs written in the last few minutes).

        Raises:
            InvalidCallSid: the call SID is malformed (before any I/O).
            InvalidConversationId: the conversation id is malformed (before any I/O).
            CacheUnavailable: the cache could not store it.
        """
        memo = self.shared.tool_calls
        ref, entries = memo.prepare(self.settings.keys, call_sid, conversation_id, agent_id)
        if entries:
            with caller_cache_fault("remember_tool_call"):
                await self.cache.set_many(entries)
            memo.written(ref)
        return ref

    async def forget(self, call_sid: str) -> None:
        """Drop what the cache holds for `call_sid` (a mapping or a cached miss), so the next
        `resolve()` asks the API.

        Args:
            call_sid: the call SID to forget.

        Raises:
            InvalidCallSid: `call_sid` is not a call SID.
            CacheUnavailable: the cache could not be reached.
        """
        key = self.shared.forgetting(call_sid)
        with caller_cache_fault("forget"):
            await self.cache.delete(key)

    async def _drive(self, sid: str, plan: Plan) -> Resolution:
        outcome: object = None
        error: ApiError | None = None
        claims: list[tuple[str, str]] = []
        self.shared.lookups.started(sid)
        try:
            while True:
                try:
                    # An API error goes back into the plan, which may recover (a rejected filter).
                    op = plan.throw(error) if error is not None else plan.send(outcome)
                except StopIteration as done:
                    resolution: Resolution = done.value
                    return resolution
                outcome, error = None, None
                try:
                    outcome = await self._perform(op, claims)
                except ApiError as exc:
                    error = exc
        finally:
            self.shared.lookups.ended(sid)
            await self._release(claims)

    async def _perform(self, op: Operation, claims: list[tuple[str, str]]) -> object:
        if isinstance(op, ClaimFlight | ReadCache | WriteCache):
            try:
                return await self._perform_cache(op, claims)
            except Exception as exc:
                self.shared.cache_fault(type(op).__name__, exc)
                return without_cache(op)
        if isinstance(op, Pause):
            return await self.sleep(op.seconds)
        if isinstance(op, ListPage):
            return await self.client.perform(_api.list_conversations(op.query))
        return await self._fetch(op)

    async def _perform_cache(
        self, op: ClaimFlight | ReadCache | WriteCache, claims: list[tuple[str, str]]
    ) -> object:
        if isinstance(op, ClaimFlight):
            if self.flight_lock is None:  # never asked for: the plan claims only with a lock
                return True
            token = await self.flight_lock.claim(op.key, op.ttl)
            if token is not None:
                claims.append((op.key, token))
            return token is not None
        if isinstance(op, ReadCache):
            return await self.cache.get_many(op.keys)
        entries = self.shared.lookups.to_write(op.entries)
        if op.only_if_absent:  # a backend without the keyword fails here: the miss goes unwritten
            await self.cache.set_many(entries, op.ttl, only_if_absent=True)
        else:
            await self.cache.set_many(entries, op.ttl)
        return None

    async def _release(self, claims: list[tuple[str, str]]) -> None:
        if self.flight_lock is None:
            return
        for key, token in claims:
            try:
                await self.flight_lock.release(key, token)
            except Exception as exc:  # the lock expires by itself
                self.shared.cache_fault("release", exc)

    async def _fetch(self, op: Fetch) -> FetchOutcome:
        return await async_parallel_reads(op, self._read, self._list_ahead)

    async def _list_ahead(self, query: ListQuery, on_retry: OnRetry) -> object:
        try:
            return await self.client.perform(_api.list_conversations(query), on_retry)
        except Exception as exc:  # the plan lists it again, where the error is handled
            return exc

    async def _read(self, conversation_id: str, on_retry: OnRetry) -> ReadAnswer:
        try:
            return await self.client.perform(_api.get_conversation(conversation_id), on_retry)
        except NotFound as exc:
            return None, exc.attempts
