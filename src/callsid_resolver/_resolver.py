"""`CallSidResolver` and `AsyncCallSidResolver`: drivers of the one strategy in `_core._plan`.

Each driver does three things the plan cannot: single flight (concurrent lookups of one call SID
share one upstream lookup), the cache's I/O, and fetching candidates with bounded concurrency.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from itertools import islice
from typing import Any, TypedDict, TypeVar

from typing_extensions import Unpack

from ._async.client import AsyncElevenLabsClient
from ._cache import (
    AsyncResolutionCache,
    CachedMapping,
    CacheKeys,
    MemoryCache,
    ResolutionCache,
    SharedFlight,
    as_async_cache,
)
from ._core import _api
from ._core._api import ListQuery
from ._core._callsid import validate_call_sid
from ._core._hints import narrow_hints
from ._core._keys import DEFAULT_NAMESPACE
from ._core._ops import ClaimFlight, Fetch, ListPage, Operation, Pause, ReadCache, WriteCache
from ._core._plan import Hints, Plan, ServerCapabilities, Settings, resolve_plan
from ._exceptions import ApiError, NotFound
from ._flights import TaskFlights, ThreadFlights
from ._lookups import Lookups, caller_cache_fault, log_cache_fault, without_cache
from ._memory import warm_table
from ._models import Conversation, Resolution
from ._priming import CallRef, ToolCallMemo
from ._sync.client import ElevenLabsClient

__all__ = ["AsyncCallSidResolver", "CallSidResolver", "ResolveHints", "ResolverOptions"]

T = TypeVar("T")
Instant = datetime | int | float | None


class ResolverOptions(TypedDict, total=False):
    """Tuning shared by `CallSidResolver` and `AsyncCallSidResolver`.

    `max_scan` (1000) bounds how many listed conversations a fallback scan walks through;
    `concurrency` (16) bounds parallel reads; `negative_ttl` (30 s) is how long a miss is
    remembered (a call that just started may not be listed yet, so keep it short); `live_ttl`
    (15 s) is how long a live conversation whose GET showed no call id is not read again while
    it stays live; `use_filter` and `live_first` (True) switch those steps; `namespace` prefixes
    every cache key (one per ElevenLabs workspace when several share a Redis).
    """

    max_scan: int
    concurrency: int
    negative_ttl: float
    live_ttl: float
    use_filter: bool
    live_first: bool
    namespace: str


class ResolveHints(TypedDict, total=False):
    """What the caller knows about a call; each hint narrows what the API lists.

    `started_after`/`started_before` take a timezone-aware `datetime` or unix seconds;
    `initiation_source` is the list filter's value (`twilio`, `sip_trunk`, ...).
    `in_progress=True` says the call is going on now (a tool called during the call): only the
    filter and the live step run, never a history scan, and a miss is not cached.
    """

    agent_id: str | None
    phone_number_id: str | None
    started_after: Instant
    started_before: Instant
    initiation_source: str | None
    in_progress: bool


class _ResolverBase:
    def __init__(self, cache: object, options: ResolverOptions) -> None:
        tuning = {k: v for k, v in options.items() if k != "namespace"}
        self.settings = Settings(
            shared_flight=isinstance(cache, SharedFlight),
            keys=CacheKeys(options.get("namespace", DEFAULT_NAMESPACE)),
            **tuning,  # type: ignore[arg-type]
        )
        self.capabilities = ServerCapabilities()
        self.cache_faults = 0
        self._lookups = Lookups(self.settings.keys)
        self._warm_entries, self._warm_clock = warm_table(cache, self.settings.keys)

    def _warm(self, call_sid: str, hints: ResolveHints) -> Resolution | None:
        """The answer from the in-process cache, before the plan and the single flight: what
        the plan's first step would return, or None to let the plan run (a miss, a cached miss,
        an entry of another agent than the `agent_id` hint names).

        The table holds only validated call SIDs, so a hit needs no validation of `call_sid`.
        """
        table = self._warm_entries
        if table is None:
            return None
        try:
            entry = table.get(call_sid)
        except TypeError:  # unhashable: the plan refuses it
            return None
        if entry is None or entry.conversation_id is None or entry.expires <= self._warm_clock():
            return None
        if hints:  # checked as the plan checks them; the agent rule is `_Search._of_the_agent`
            self._check_hints(hints)
            agent_id = narrow_hints(hints).agent_id
            if agent_id is not None and entry.agent_id not in (None, agent_id):
                return None
        return entry.resolution or entry.to_resolution()

    @staticmethod
    def _check_hints(hints: ResolveHints) -> None:
        unknown = hints.keys() - ResolveHints.__annotations__.keys()
        if unknown:
            raise TypeError(f"unknown hint(s): {', '.join(sorted(unknown))}")

    def _forgetting(self, sid: str) -> str:
        self._lookups.forgetting(sid)
        return self.settings.keys.sid(sid)

    def _cache_fault(self, operation: str, exc: Exception) -> None:
        self.cache_faults += 1
        log_cache_fault(operation, exc)

    def _plan(
        self, call_sid: str, hints: ResolveHints
    ) -> tuple[tuple[str, Hints], Callable[[], Plan]]:
        self._check_hints(hints)
        sid = validate_call_sid(call_sid)
        narrowed = narrow_hints(hints)
        return (sid, narrowed), lambda: resolve_plan(
            sid, narrowed, self.capabilities, self.settings
        )

    def _primed(
        self, call_sid: str, conversation_id: str, agent_id: str | None
    ) -> dict[str, CachedMapping]:
        sid = validate_call_sid(call_sid)
        mapping = CachedMapping(
            call_sid=sid,
            conversation_id=_api.validate_conversation_id(conversation_id),
            agent_id=agent_id,
            primed=True,
        )
        keys = self.settings.keys
        return {keys.sid(sid): mapping, keys.conversation(conversation_id): mapping}

    # Tool-call priming (docs/protocol.md §7): the shared core is `_priming.ToolCallMemo`.
    _tool_calls: ToolCallMemo | None = None

    def _tool_call_memo(self) -> ToolCallMemo:
        # Created on first use; two threads racing here cost at most one extra cache write.
        if self._tool_calls is None:
            self._tool_calls = ToolCallMemo()
        return self._tool_calls


class CallSidResolver(_ResolverBase):
    """Resolves call SIDs to ElevenLabs conversations, blocking; safe to share between threads.

    `cache` defaults to a `MemoryCache`; pass a shared one (`RedisCache`, `TieredCache`) to share
    mappings and the single flight across processes. `options` are the `ResolverOptions`.

    A failing cache (Redis down, out of memory) never fails a lookup: the resolver goes on without
    it, logs a warning and counts the fault in `cache_faults`; only `remember` and `forget`, whose
    whole point is the cache, raise `CacheUnavailable`.
    """

    def __init__(
        self,
        client: ElevenLabsClient,
        *,
        cache: ResolutionCache | None = None,
        **options: Unpack[ResolverOptions],
    ) -> None:
        self.cache: ResolutionCache = cache if cache is not None else MemoryCache()
        super().__init__(self.cache, options)
        self.client = client
        self._flights = ThreadFlights()

    def resolve(self, call_sid: str, **hints: Unpack[ResolveHints]) -> Resolution:
        """The conversation of `call_sid`: a Twilio call SID (`system__call_sid`), or a SIP
        call's `call_sid` or Call-ID (`system__call_id`); `Resolution.matched_by` says which.

        `hints` (`ResolveHints`) narrow the search; `in_progress=True` when the call is going
        on now. Raises `InvalidCallSid` before any I/O for bad input and `ConversationNotFound`
        (saying what was searched, and for a live call how else to learn the mapping) when no
        conversation shows the id.
        """
        found = self._warm(call_sid, hints)
        if found is not None:
            return found
        key, plan = self._plan(call_sid, hints)
        return self._flights.run(key, lambda: self._drive(plan(), key[0]))

    def remember(self, call_sid: str, conversation_id: str, *, agent_id: str | None = None) -> None:
        """Record a mapping learned elsewhere (outbound-call response, webhook, own session).

        Raises `CacheUnavailable` when the cache could not store it.
        """
        entries = self._primed(call_sid, conversation_id, agent_id)
        with caller_cache_fault("remember"):
            self.cache.set_many(entries)

    def remember_tool_call(
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
        """
        memo = self._tool_call_memo()
        ref, entries = memo.prepare(self.settings.keys, call_sid, conversation_id, agent_id)
        if entries:
            with caller_cache_fault("remember_tool_call"):
                self.cache.set_many(entries)
            memo.written(ref)
        return ref

    def forget(self, call_sid: str) -> None:
        """Drop what the cache holds for `call_sid` (a mapping or a cached miss), so the next
        `resolve()` asks the API.

        Args:
            call_sid: the call SID to forget.

        Raises:
            InvalidCallSid: `call_sid` is not a call SID.
            CacheUnavailable: the cache could not be reached.
        """
        key = self._forgetting(validate_call_sid(call_sid))
        with caller_cache_fault("forget"):
            self.cache.delete(key)

    def _drive(self, plan: Plan, sid: str) -> Resolution:
        outcome: Any = None
        error: ApiError | None = None
        claims: list[tuple[str, str]] = []
        self._lookups.started(sid)
        try:
            while True:
                try:
                    # An API error goes back into the plan, which may recover (a rejected filter).
                    op = plan.throw(error) if error is not None else plan.send(outcome)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
                outcome, error = None, None
                try:
                    outcome = self._perform(op, claims)
                except ApiError as exc:
                    error = exc
        finally:
            self._lookups.ended(sid)
            for key, token in claims:
                try:
                    self.cache.release(key, token)  # type: ignore[attr-defined]
                except Exception as exc:  # the lock expires by itself
                    self._cache_fault("release", exc)

    def _perform(self, op: Operation, claims: list[tuple[str, str]]) -> Any:
        if isinstance(op, ClaimFlight | ReadCache | WriteCache):
            try:
                return self._perform_cache(op, claims)
            except Exception as exc:
                self._cache_fault(type(op).__name__, exc)
                return without_cache(op)
        if isinstance(op, Pause):
            return time.sleep(op.seconds)
        if isinstance(op, ListPage):
            return self.client.perform(_api.list_conversations(op.query))
        return self._fetch(op)

    def _perform_cache(self, op: ClaimFlight | ReadCache | WriteCache, claims: list[Any]) -> Any:
        if isinstance(op, ClaimFlight):
            token = self.cache.claim(op.key, op.ttl)  # type: ignore[attr-defined]
            if token is not None:
                claims.append((op.key, token))
            return token is not None
        if isinstance(op, ReadCache):
            return self.cache.get_many(op.keys)
        entries = self._lookups.to_write(op.entries)
        if op.only_if_absent:  # a backend without the keyword fails here: the miss goes unwritten
            return self.cache.set_many(entries, op.ttl, only_if_absent=True)
        return self.cache.set_many(entries, op.ttl)

    def _fetch(self, op: Fetch) -> tuple[list[Conversation], int, Any]:
        window, todo = op.window, iter(op.conversation_ids)
        fetched: dict[str, Conversation] = {}
        # Tickets of reads answered 429, appended by the workers: only this thread drives the
        # window, at each completion, which is as soon as its next `room` is asked for.
        refused: deque[int] = deque()
        spent = 0
        found = False
        listing: Future[Any] | None = None
        width = min(window.limit, len(op.conversation_ids)) + (op.then is not None)
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="callsid-fetch") as pool:

            def start(count: int) -> set[Future[Any]]:
                nonlocal listing
                ids = list(islice(todo, count))
                more = {
                    pool.submit(self._get, cid, _on_429(window.start(), refused.append))
                    for cid in ids
                }
                if op.then is not None and listing is None and count > len(ids) and not found:
                    on_retry = _on_429(window.start(), refused.append)
                    listing = pool.submit(self._list_ahead, op.then, on_retry)
                    more.add(listing)
                return more

            running = start(window.room(0))
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                while refused:
                    window.congested(refused.popleft())
                for future in done:
                    window.answered()
                    if future is listing:
                        continue
                    conversation, requests = future.result()
                    spent += requests
                    if conversation is not None:
                        fetched[conversation.conversation_id] = conversation
                        found |= conversation.matched_by(op.call_sid) is not None
                if not found:
                    running |= start(window.room(len(running)))
        listed = listing.result() if listing is not None else None
        return [fetched[c] for c in op.conversation_ids if c in fetched], spent, listed

    def _list_ahead(self, query: ListQuery, on_retry: Callable[[int], Any]) -> Any:
        try:
            return self.client.perform(_api.list_conversations(query), on_retry)
        except Exception as exc:  # the plan lists it again, where the error is handled
            return exc

    def _get(
        self, conversation_id: str, on_retry: Callable[[int], Any]
    ) -> tuple[Conversation | None, int]:
        try:
            return self.client.perform(_api.get_conversation(conversation_id), on_retry)
        except NotFound as exc:
            return None, exc.attempts


class AsyncCallSidResolver(_ResolverBase):
    """The asyncio twin of `CallSidResolver`; `cache` may be a blocking or an async backend."""

    def __init__(
        self,
        client: AsyncElevenLabsClient,
        *,
        cache: ResolutionCache | AsyncResolutionCache | None = None,
        **options: Unpack[ResolverOptions],
    ) -> None:
        given = cache if cache is not None else MemoryCache()
        super().__init__(given, options)
        self.client = client
        self.cache = as_async_cache(given)
        self._flights = TaskFlights()

    async def resolve(self, call_sid: str, **hints: Unpack[ResolveHints]) -> Resolution:
        """The conversation of `call_sid`; see `CallSidResolver.resolve`."""
        found = self._warm(call_sid, hints)
        if found is not None:
            return found
        key, plan = self._plan(call_sid, hints)
        return await self._flights.run(key, lambda: self._drive(plan(), key[0]))

    async def remember(
        self, call_sid: str, conversation_id: str, *, agent_id: str | None = None
    ) -> None:
        """Record a mapping learned elsewhere; see `CallSidResolver.remember`."""
        entries = self._primed(call_sid, conversation_id, agent_id)
        with caller_cache_fault("remember"):
            await self.cache.set_many(entries)

    async def remember_tool_call(
        self, call_sid: str, conversation_id: str, *, agent_id: str | None = None
    ) -> CallRef:
        """The asyncio twin of `CallSidResolver.remember_tool_call`."""
        memo = self._tool_call_memo()
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
        key = self._forgetting(validate_call_sid(call_sid))
        with caller_cache_fault("forget"):
            await self.cache.delete(key)

    async def _drive(self, plan: Plan, sid: str) -> Resolution:
        outcome: Any = None
        error: ApiError | None = None
        claims: list[tuple[str, str]] = []
        self._lookups.started(sid)
        try:
            while True:
                try:
                    op = plan.throw(error) if error is not None else plan.send(outcome)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
                outcome, error = None, None
                try:
                    outcome = await self._perform(op, claims)
                except ApiError as exc:
                    error = exc
        finally:
            self._lookups.ended(sid)
            for key, token in claims:
                try:
                    await self.cache.release(key, token)  # type: ignore[attr-defined]
                except Exception as exc:  # the lock expires by itself
                    self._cache_fault("release", exc)

    async def _perform(self, op: Operation, claims: list[tuple[str, str]]) -> Any:
        if isinstance(op, ClaimFlight | ReadCache | WriteCache):
            try:
                return await self._perform_cache(op, claims)
            except Exception as exc:
                self._cache_fault(type(op).__name__, exc)
                return without_cache(op)
        if isinstance(op, Pause):
            return await asyncio.sleep(op.seconds)
        if isinstance(op, ListPage):
            return await self.client.perform(_api.list_conversations(op.query))
        return await self._fetch(op)

    async def _perform_cache(
        self, op: ClaimFlight | ReadCache | WriteCache, claims: list[Any]
    ) -> Any:
        if isinstance(op, ClaimFlight):
            token = await self.cache.claim(op.key, op.ttl)  # type: ignore[attr-defined]
            if token is not None:
                claims.append((op.key, token))
            return token is not None
        if isinstance(op, ReadCache):
            return await self.cache.get_many(op.keys)
        entries = self._lookups.to_write(op.entries)
        if op.only_if_absent:  # see `CallSidResolver._perform_cache`
            return await self.cache.set_many(entries, op.ttl, only_if_absent=True)
        return await self.cache.set_many(entries, op.ttl)

    async def _fetch(self, op: Fetch) -> tuple[list[Conversation], int, Any]:
        window, todo = op.window, iter(op.conversation_ids)
        fetched: dict[str, Conversation] = {}
        spent = 0
        found = False
        listing: asyncio.Future[Any] | None = None

        def start(count: int) -> set[asyncio.Future[Any]]:
            nonlocal listing
            ids = list(islice(todo, count))
            more: set[asyncio.Future[Any]] = {
                asyncio.ensure_future(self._get(cid, _on_429(window.start(), window.congested)))
                for cid in ids
            }
            if op.then is not None and listing is None and count > len(ids) and not found:
                on_retry = _on_429(window.start(), window.congested)
                listing = asyncio.ensure_future(self._list_ahead(op.then, on_retry))
                more.add(listing)
            return more

        running = start(window.room(0))
        try:
            while running:
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    window.answered()
                    if task is listing:
                        continue
                    conversation, requests = task.result()
                    spent += requests
                    if conversation is not None:
                        fetched[conversation.conversation_id] = conversation
                        found |= conversation.matched_by(op.call_sid) is not None
                if not found:
                    running |= start(window.room(len(running)))
        finally:
            for task in running:
                task.cancel()
        listed = listing.result() if listing is not None else None
        return [fetched[c] for c in op.conversation_ids if c in fetched], spent, listed

    async def _list_ahead(self, query: ListQuery, on_retry: Callable[[int], Any]) -> Any:
        try:
            return await self.client.perform(_api.list_conversations(query), on_retry)
        except Exception as exc:  # the plan lists it again, where the error is handled
            return exc

    async def _get(
        self, conversation_id: str, on_retry: Callable[[int], Any]
    ) -> tuple[Conversation | None, int]:
        try:
            return await self.client.perform(_api.get_conversation(conversation_id), on_retry)
        except NotFound as exc:
            return None, exc.attempts


def _on_429(ticket: int, refused: Callable[[int], Any]) -> Callable[[int], None]:
    """What a read tells its window when an answer is about to be retried: only a 429 says
    that the workspace's concurrency limit is reached (docs/protocol.md §10); a 5xx does not."""

    def on_retry(status: int) -> None:
        if status == 429:
            refused(ticket)

    return on_retry
