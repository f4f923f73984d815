"""`CallSidResolver` and `AsyncCallSidResolver`: drivers of the one strategy in `_core._plan`.

Each driver does three things the plan cannot: single flight (concurrent lookups of one call SID
share one upstream lookup), the cache's I/O, and fetching candidates with bounded concurrency.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from itertools import islice
from typing import Any, TypedDict, TypeVar

from typing_extensions import Unpack

from ._cache import (
    AsyncResolutionCache,
    CachedMapping,
    CacheKeys,
    MemoryCache,
    ResolutionCache,
    SharedFlight,
)
from ._client import AsyncElevenLabsClient, ElevenLabsClient
from ._core import _api
from ._core._callsid import validate_call_sid
from ._core._plan import (
    ClaimFlight,
    Fetch,
    Hints,
    ListPage,
    Operation,
    Pause,
    Plan,
    ReadCache,
    ServerCapabilities,
    Settings,
    WriteCache,
    resolve_plan,
)
from ._exceptions import ApiError, NotFound
from ._models import Conversation, Resolution
from ._priming import CallRef, ToolCallMemo

__all__ = ["AsyncCallSidResolver", "CallSidResolver", "ResolveHints", "ResolverOptions"]

T = TypeVar("T")
Instant = datetime | int | float | None


class ResolverOptions(TypedDict, total=False):
    """Tuning shared by `CallSidResolver` and `AsyncCallSidResolver`.

    `max_scan` (1000) bounds how many listed conversations a fallback scan walks through;
    `concurrency` (8) bounds parallel reads; `negative_ttl` (30 s) is how long a miss is
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
            keys=CacheKeys(options.get("namespace", CacheKeys.namespace)),
            **tuning,  # type: ignore[arg-type]
        )
        self.capabilities = ServerCapabilities()

    def _plan(self, call_sid: str, hints: ResolveHints) -> tuple[Hashable, Callable[[], Plan]]:
        unknown = hints.keys() - ResolveHints.__annotations__.keys()
        if unknown:
            raise TypeError(f"unknown hint(s): {', '.join(sorted(unknown))}")
        sid = validate_call_sid(call_sid)
        narrowed = Hints(
            agent_id=hints.get("agent_id"),
            phone_number_id=hints.get("phone_number_id"),
            started_after=_unix(hints.get("started_after")),
            started_before=_unix(hints.get("started_before")),
            initiation_source=hints.get("initiation_source"),
            in_progress=bool(hints.get("in_progress", False)),
        )
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
    """

    def __init__(
        self,
        client: ElevenLabsClient,
        *,
        cache: ResolutionCache | None = None,
        **options: Unpack[ResolverOptions],
    ) -> None:
        super().__init__(cache, options)
        self.client = client
        self.cache: ResolutionCache = cache if cache is not None else MemoryCache()
        self._flights = _ThreadFlights()

    def resolve(self, call_sid: str, **hints: Unpack[ResolveHints]) -> Resolution:
        """The conversation of `call_sid`: a Twilio call SID (`system__call_sid`), or a SIP
        call's `call_sid` or Call-ID (`system__call_id`); `Resolution.matched_by` says which.

        `hints` (`ResolveHints`) narrow the search; `in_progress=True` when the call is going
        on now. Raises `InvalidCallSid` before any I/O for bad input and `ConversationNotFound`
        (saying what was searched, and for a live call how else to learn the mapping) when no
        conversation shows the id.
        """
        key, plan = self._plan(call_sid, hints)
        return self._flights.run(key, lambda: self._drive(plan()))

    def remember(self, call_sid: str, conversation_id: str, *, agent_id: str | None = None) -> None:
        """Record a mapping learned elsewhere (outbound-call response, webhook, own session)."""
        self.cache.set_many(self._primed(call_sid, conversation_id, agent_id))

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
            self.cache.set_many(entries)
            memo.written(ref)
        return ref

    def forget(self, call_sid: str) -> None:
        self.cache.delete(self.settings.keys.sid(validate_call_sid(call_sid)))

    def _drive(self, plan: Plan) -> Resolution:
        outcome: Any = None
        error: ApiError | None = None
        claims: list[tuple[str, str]] = []
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
            for key, token in claims:
                self.cache.release(key, token)  # type: ignore[attr-defined]

    def _perform(self, op: Operation, claims: list[tuple[str, str]]) -> Any:
        if isinstance(op, ClaimFlight):
            token = self.cache.claim(op.key, op.ttl)  # type: ignore[attr-defined]
            if token is not None:
                claims.append((op.key, token))
            return token is not None
        if isinstance(op, Pause):
            return time.sleep(op.seconds)
        if isinstance(op, ReadCache):
            return self.cache.get_many(op.keys)
        if isinstance(op, WriteCache):
            return self.cache.set_many(op.entries, op.ttl)
        if isinstance(op, ListPage):
            return self.client._call(_api.list_conversations(op.query))
        return self._fetch(op)

    def _fetch(self, op: Fetch) -> tuple[list[Conversation], int]:
        todo = iter(op.conversation_ids)
        fetched: dict[str, Conversation] = {}
        spent = completed = 0
        found = False
        width = min(op.concurrency, len(op.conversation_ids))
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="callsid-fetch") as pool:
            running = {pool.submit(self._get, cid) for cid in islice(todo, op.room(0, 0))}
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                completed += len(done)
                for future in done:
                    conversation, requests = future.result()
                    spent += requests
                    if conversation is not None:
                        fetched[conversation.conversation_id] = conversation
                        found |= conversation.matched_by(op.call_sid) is not None
                if not found:
                    more = islice(todo, op.room(completed, len(running)))
                    running |= {pool.submit(self._get, cid) for cid in more}
        return [fetched[c] for c in op.conversation_ids if c in fetched], spent

    def _get(self, conversation_id: str) -> tuple[Conversation | None, int]:
        try:
            return self.client._call(_api.get_conversation(conversation_id))
        except NotFound:
            return None, 1


class AsyncCallSidResolver(_ResolverBase):
    """The asyncio twin of `CallSidResolver`; `cache` may be a blocking or an async backend."""

    def __init__(
        self,
        client: AsyncElevenLabsClient,
        *,
        cache: ResolutionCache | AsyncResolutionCache | None = None,
        **options: Unpack[ResolverOptions],
    ) -> None:
        super().__init__(cache, options)
        self.client = client
        self.cache = _as_async(cache if cache is not None else MemoryCache())
        self._flights = _TaskFlights()

    async def resolve(self, call_sid: str, **hints: Unpack[ResolveHints]) -> Resolution:
        """The conversation of `call_sid`; see `CallSidResolver.resolve`."""
        key, plan = self._plan(call_sid, hints)
        return await self._flights.run(key, lambda: self._drive(plan()))

    async def remember(
        self, call_sid: str, conversation_id: str, *, agent_id: str | None = None
    ) -> None:
        """Record a mapping learned elsewhere (outbound-call response, webhook, own session)."""
        await self.cache.set_many(self._primed(call_sid, conversation_id, agent_id))

    async def remember_tool_call(
        self, call_sid: str, conversation_id: str, *, agent_id: str | None = None
    ) -> CallRef:
        """The asyncio twin of `CallSidResolver.remember_tool_call`."""
        memo = self._tool_call_memo()
        ref, entries = memo.prepare(self.settings.keys, call_sid, conversation_id, agent_id)
        if entries:
            await self.cache.set_many(entries)
            memo.written(ref)
        return ref

    async def forget(self, call_sid: str) -> None:
        await self.cache.delete(self.settings.keys.sid(validate_call_sid(call_sid)))

    async def _drive(self, plan: Plan) -> Resolution:
        outcome: Any = None
        error: ApiError | None = None
        claims: list[tuple[str, str]] = []
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
            for key, token in claims:
                await self.cache.release(key, token)  # type: ignore[attr-defined]

    async def _perform(self, op: Operation, claims: list[tuple[str, str]]) -> Any:
        if isinstance(op, ClaimFlight):
            token = await self.cache.claim(op.key, op.ttl)  # type: ignore[attr-defined]
            if token is not None:
                claims.append((op.key, token))
            return token is not None
        if isinstance(op, Pause):
            return await asyncio.sleep(op.seconds)
        if isinstance(op, ReadCache):
            return await self.cache.get_many(op.keys)
        if isinstance(op, WriteCache):
            return await self.cache.set_many(op.entries, op.ttl)
        if isinstance(op, ListPage):
            return await self.client._call(_api.list_conversations(op.query))
        return await self._fetch(op)

    async def _fetch(self, op: Fetch) -> tuple[list[Conversation], int]:
        todo = iter(op.conversation_ids)
        fetched: dict[str, Conversation] = {}
        spent = completed = 0
        found = False
        running = {asyncio.ensure_future(self._get(cid)) for cid in islice(todo, op.room(0, 0))}
        try:
            while running:
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                completed += len(done)
                for task in done:
                    conversation, requests = task.result()
                    spent += requests
                    if conversation is not None:
                        fetched[conversation.conversation_id] = conversation
                        found |= conversation.matched_by(op.call_sid) is not None
                if not found:
                    more = islice(todo, op.room(completed, len(running)))
                    running |= {asyncio.ensure_future(self._get(cid)) for cid in more}
        finally:
            for task in running:
                task.cancel()
        return [fetched[c] for c in op.conversation_ids if c in fetched], spent

    async def _get(self, conversation_id: str) -> tuple[Conversation | None, int]:
        try:
            return await self.client._call(_api.get_conversation(conversation_id))
        except NotFound:
            return None, 1


class _ThreadFlights:
    """In-process single flight for threads: the first caller of a key runs, the others wait."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[Hashable, Future[Resolution]] = {}

    def run(self, key: Hashable, work: Callable[[], Resolution]) -> Resolution:
        with self._lock:
            future = self._running.get(key)
            leader = future is None
            if future is None:
                future = self._running[key] = Future()
        if not leader:
            return _shared(future.result())
        try:
            result = work()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(result)
            return result
        finally:
            with self._lock:
                del self._running[key]


class _TaskFlights:
    """Single flight for asyncio: one task per key, awaited (shielded) by every caller, so a
    cancelled caller never cancels the lookup the others are waiting for."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task[Resolution]] = {}

    async def run(self, key: Hashable, work: Callable[[], Awaitable[Resolution]]) -> Resolution:
        task = self._running.get(key)
        leader = task is None
        if task is None:
            task = asyncio.ensure_future(work())
            self._running[key] = task
            task.add_done_callback(lambda t: self._finished(key, t))
        result = await asyncio.shield(task)
        return result if leader else _shared(result)

    def _finished(self, key: Hashable, task: asyncio.Task[Resolution]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved, so an error nobody awaited is not reported as lost


def _shared(result: Resolution) -> Resolution:
    """A waiter's copy: it sent no request of its own."""
    return result.model_copy(update={"requests": 0})


class _BlockingCacheAdapter:
    """Lets the async resolver use a blocking backend (fine for memory; avoid for network I/O)."""

    def __init__(self, cache: ResolutionCache) -> None:
        self.wrapped = cache
        if isinstance(cache, SharedFlight):
            self.claim, self.release = _awaitable(cache.claim), _awaitable(cache.release)

    async def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
        return self.wrapped.get_many(keys)

    async def set_many(self, items: Mapping[str, CachedMapping], ttl: float | None = None) -> None:
        self.wrapped.set_many(items, ttl)

    async def delete(self, key: str) -> None:
        self.wrapped.delete(key)


def _awaitable(function: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    async def call(*args: Any) -> T:
        return function(*args)

    return call


def _as_async(cache: ResolutionCache | AsyncResolutionCache) -> AsyncResolutionCache:
    if inspect.iscoroutinefunction(cache.get_many):
        return cache  # type: ignore[return-value]
    return _BlockingCacheAdapter(cache)  # type: ignore[arg-type]


def _unix(value: Instant) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("started_after/started_before must be timezone-aware datetimes")
        return int(value.timestamp())
    return int(value)
