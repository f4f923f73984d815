"""The concurrency pieces that differ between the twins beyond names, written by hand in pairs.

`scripts/unasync.py` turns each `Async...` name of an `_async` module into its blocking twin
here (`AsyncInFlight` into `InFlight`, ...), so each pair keeps the same methods.
For the clients: the in-flight bound (an asyncio or a thread semaphore), how an attempt is held
to the call's deadline (`asyncio.timeout`, or a watchdog that shuts a stalled socket), the
default transport, and the type of an injected `sleep`.
For the resolver: its parallel reads (threads and a `ThreadPoolExecutor` on one side, tasks on
the other).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import islice
from typing import Any, Literal, Protocol, TypeVar
from urllib.request import getproxies

import httpx

from ._core._api import ListQuery
from ._core._ops import Fetch
from ._core._retry import RetryState
from ._models import Conversation
from ._shards import ShardedTransport
from ._watchdog import Watchdog

__all__ = [
    "AIOHTTP_HINT",
    "AsyncBackend",
    "AsyncDeadlineGuard",
    "AsyncInFlight",
    "AsyncListAhead",
    "AsyncReadOne",
    "AsyncSleep",
    "Backend",
    "DeadlineGuard",
    "FetchOutcome",
    "InFlight",
    "ListAhead",
    "OnRetry",
    "ReadAnswer",
    "ReadOne",
    "Sleep",
    "async_parallel_reads",
    "async_pool_transport",
    "on_429",
    "parallel_reads",
    "pool_transport",
]

T = TypeVar("T")

AIOHTTP_HINT = "backend='aiohttp' needs httpx-aiohttp: pip install 'callsid-resolver[aiohttp]'"

AsyncSleep = Callable[[float], Awaitable[object]]
"""The `sleep` an asyncio client waits with between attempts (`asyncio.sleep` by default)."""
Sleep = Callable[[float], object]
"""The `sleep` a blocking client waits with between attempts (`time.sleep` by default)."""

AsyncBackend = Literal["httpx", "aiohttp"]
"""What sends the requests of a pool the asyncio client builds itself."""
Backend = Literal["httpx"]
"""The blocking client sends through httpx only (aiohttp is asyncio only)."""


class AsyncInFlight:
    """At most `max_in_flight` attempts at once (None: no bound), each cut at the call's
    deadline as a whole, the wait for a slot included (docs/protocol.md §10)."""

    def __init__(self, max_in_flight: int | None, *, clock: Callable[[], float]) -> None:
        self.max_in_flight = max_in_flight
        # One slot per attempt in flight (None: no bound).
        self.slots = None if max_in_flight is None else asyncio.Semaphore(max_in_flight)
        self._clock = clock

    async def run(self, state: RetryState, exchange: Callable[[], Awaitable[T]]) -> T:
        """`exchange()` (one attempt) in a slot, or `httpx.PoolTimeout` if no slot freed in time
        (counted as an attempt) and `httpx.ReadTimeout` if the attempt itself ran out of time."""
        left = max(state.deadline_at - self._clock(), 0.001)
        sent = state.attempts
        try:
            return await _within(left, self._in_slot(exchange))
        except asyncio.TimeoutError:
            if state.attempts == sent:  # never sent: it waited for a slot
                state.count_unsent_attempt()
                message = f"no request slot of {self.max_in_flight} freed in time"
                raise httpx.PoolTimeout(message) from None
            raise httpx.ReadTimeout("total deadline reached during the request") from None

    async def _in_slot(self, exchange: Callable[[], Awaitable[T]]) -> T:
        if self.slots is None:
            return await exchange()
        async with self.slots:
            return await exchange()


async def _wait_for_within(seconds: float, attempt: Awaitable[T]) -> T:
    return await asyncio.wait_for(attempt, seconds)


if sys.version_info >= (3, 11):

    async def _timeout_within(seconds: float, attempt: Awaitable[T]) -> T:
        async with asyncio.timeout(seconds):
            return await attempt

    # In the caller's task: `wait_for` wraps each attempt in a task of its own (until 3.12),
    # about 5% of the client's CPU under a burst (issue #16). Before 3.11.3 a task that had once
    # swallowed a cancellation got CancelledError from `timeout` instead of TimeoutError
    # (https://github.com/python/cpython/issues/102780).
    _within = _timeout_within if sys.version_info >= (3, 11, 3) else _wait_for_within
else:  # pragma: no cover - Python 3.10
    _within = _wait_for_within


class InFlight:
    """At most `max_in_flight` attempts at once (None: no bound); a thread waits for a slot
    until the call's deadline at most. `DeadlineGuard` bounds the attempt itself."""

    def __init__(self, max_in_flight: int | None, *, clock: Callable[[], float]) -> None:
        self.max_in_flight = max_in_flight
        # One slot per attempt in flight (None: no bound).
        self.slots = None if max_in_flight is None else threading.BoundedSemaphore(max_in_flight)
        self._clock = clock

    def run(self, state: RetryState, exchange: Callable[[], T]) -> T:
        """`exchange()` (one attempt) in a slot, or `httpx.PoolTimeout` if no slot freed before
        the deadline (counted as an attempt)."""
        if self.slots is None:
            return exchange()
        if not self.slots.acquire(timeout=max(state.deadline_at - self._clock(), 0.0)):
            state.count_unsent_attempt()
            raise httpx.PoolTimeout(f"no request slot of {self.max_in_flight} freed in time")
        try:
            return exchange()
        finally:
            self.slots.release()


class AsyncDeadlineGuard:
    """Nothing to arm: `AsyncInFlight.run` cancels an attempt that outlives the deadline.
    The twin of `DeadlineGuard`, so that one source drives both."""

    def __init__(self, request: httpx.Request, seconds: float) -> None:
        pass

    def watch(self, response: httpx.Response) -> None:
        """Nothing to learn from the response headers."""

    def cancel(self) -> None:
        """Nothing to cancel."""


class DeadlineGuard:
    """Shuts the attempt's socket once `seconds` have passed, which ends a read blocked on a
    server that trickles or stalls: httpx's timeouts bound each read, not the whole
    (docs/protocol.md §10). Learns the socket through httpcore's `trace` extension."""

    def __init__(self, request: httpx.Request, seconds: float) -> None:
        self._watchdog = Watchdog(seconds)
        request.extensions["trace"] = self._watchdog.trace

    def watch(self, response: httpx.Response) -> None:
        """Learn the socket of a pooled connection, which made no new connection to trace."""
        self._watchdog.watch(response)

    def cancel(self) -> None:
        """After this returns the socket is never shut: the connection may go back to the pool.
        Call it before closing the response."""
        self._watchdog.cancel()


def async_pool_transport(
    backend: AsyncBackend, limits: httpx.Limits, *, own_pool: bool
) -> httpx.AsyncBaseTransport | None:
    """The transport of a pool the asyncio client builds itself (None: httpx's default, and for
    a caller's client or transport); `backend` is checked either way."""
    if backend not in ("httpx", "aiohttp"):
        raise ValueError(f"backend must be 'httpx' or 'aiohttp', got {backend!r}")
    if not own_pool:
        return None
    if backend == "aiohttp":
        return _aiohttp_transport(limits)
    if limits.max_connections and not _env_proxies():
        # httpx's pool in small pools (see `_shards`); with a proxy from the environment,
        # httpx's own transport, which is the one that honours it.
        return ShardedTransport(limits)
    return None


def pool_transport(
    backend: Backend, limits: httpx.Limits, *, own_pool: bool
) -> httpx.BaseTransport | None:
    """The transport of a pool the blocking client builds itself: httpx's own, built here so
    that the client can send to it straight (None: for a caller's client or transport, or to let
    httpx honour a proxy from the environment); `backend` can only be "httpx"."""
    if backend != "httpx":
        raise ValueError(f"the blocking client sends through 'httpx' only, got {backend!r}")
    if not own_pool or _env_proxies():
        return None
    return httpx.HTTPTransport(limits=limits)


def _env_proxies() -> bool:
    return any(scheme in getproxies() for scheme in ("http", "https", "all"))


def _aiohttp_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """httpx-aiohttp's transport with a connector the size of `limits`: aiohttp's pool hands
    a freed connection to the next waiter without httpcore's scan of every connection."""
    try:
        from httpx_aiohttp import AiohttpTransport
    except ImportError as exc:
        raise ImportError(AIOHTTP_HINT) from exc
    transport: httpx.AsyncBaseTransport = AiohttpTransport(limits=limits)
    return transport


# The resolver's parallel reads
#
# `Fetch` (docs/resolution.md): GET the listed conversations as wide as the lookup's
# `ReadWindow` allows, list the walk's next page in a free slot once every read has started, and
# stop starting reads once one shows the call. The window itself is the I/O-free
# `_core._window.ReadWindow`; these drivers only start reads and report answers to it.

OnRetry = Callable[[int], None]
"""Told the status of each answer that is about to be retried (the client's `on_retry`)."""
FetchOutcome = tuple[list[Conversation], int, object]
"""What a `Fetch` is answered with: the conversations read (in the asked order), the requests
they cost, and what listing `Fetch.then` gave (`(page, requests)`, its error, or None)."""

ReadAnswer = tuple[Conversation | None, int]
"""One read's answer: the conversation (None when it is gone, 404) and the requests it cost."""
ReadOne = Callable[[str, OnRetry], ReadAnswer]
ListAhead = Callable[[ListQuery, OnRetry], object]
AsyncReadOne = Callable[[str, OnRetry], Awaitable[ReadAnswer]]
AsyncListAhead = Callable[[ListQuery, OnRetry], Awaitable[object]]


def on_429(ticket: int, refused: Callable[[int], object]) -> OnRetry:
    """What a read tells its window when an answer is about to be retried: only a 429 says
    that the workspace's concurrency limit is reached (docs/protocol.md §10); a 5xx does not."""

    def on_retry(status: int) -> None:
        if status == 429:
            refused(ticket)

    return on_retry


def parallel_reads(op: Fetch, read: ReadOne, list_ahead: ListAhead) -> FetchOutcome:
    """Answer `op` with reads on worker threads, at most the window's width at a time."""
    window, todo, reads = op.window, iter(op.conversation_ids), _Reads(op)
    # Tickets of reads answered 429, appended by the workers: only this thread drives the
    # window, at each completion, which is as soon as its next `room` is asked for.
    refused: deque[int] = deque()
    listing: Future[Any] | None = None  # the reads' futures and the listing's share one set
    width = min(window.limit, len(op.conversation_ids)) + (op.then is not None)
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="callsid-fetch") as pool:

        def start(count: int) -> set[Future[Any]]:
            nonlocal listing
            ids = list(islice(todo, count))
            more: set[Future[Any]] = {
                pool.submit(read, cid, on_429(window.start(), refused.append)) for cid in ids
            }
            if op.then is not None and listing is None and count > len(ids) and not reads.found:
                listing = pool.submit(list_ahead, op.then, on_429(window.start(), refused.append))
                more.add(listing)
            return more

        running = start(window.room(0))
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            while refused:
                window.congested(refused.popleft())
            reads.take(done, listing)
            if not reads.found:
                running |= start(window.room(len(running)))
    return reads.outcome(listing)


async def async_parallel_reads(
    op: Fetch, read: AsyncReadOne, list_ahead: AsyncListAhead
) -> FetchOutcome:
    """Answer `op` with reads in tasks, at most the window's width at a time."""
    window, todo, reads = op.window, iter(op.conversation_ids), _Reads(op)
    listing: asyncio.Future[Any] | None = None  # the reads' tasks and the listing's share a set

    def start(count: int) -> set[asyncio.Future[Any]]:
        nonlocal listing
        ids = list(islice(todo, count))
        more: set[asyncio.Future[Any]] = {
            asyncio.ensure_future(read(cid, on_429(window.start(), window.congested)))
            for cid in ids
        }
        if op.then is not None and listing is None and count > len(ids) and not reads.found:
            on_retry = on_429(window.start(), window.congested)
            listing = asyncio.ensure_future(list_ahead(op.then, on_retry))
            more.add(listing)
        return more

    running = start(window.room(0))
    try:
        while running:
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            reads.take(done, listing)
            if not reads.found:
                running |= start(window.room(len(running)))
    finally:
        for task in running:
            task.cancel()
    return reads.outcome(listing)


class _Done(Protocol):
    def result(self) -> Any: ...


class _Reads:
    """What the reads of one `Fetch` gave so far; the part both drivers share."""

    def __init__(self, op: Fetch) -> None:
        self.op = op
        self.fetched: dict[str, Conversation] = {}
        self.spent = 0
        self.found = False  # a read showed the call: start no more

    def take(self, done: Iterable[_Done], listing: _Done | None) -> None:
        """Count each completion in the window; keep each read's conversation (None: gone)."""
        for future in done:
            self.op.window.answered()
            if future is listing:
                continue
            answer: ReadAnswer = future.result()
            conversation, requests = answer
            self.spent += requests
            if conversation is not None:
                self.fetched[conversation.conversation_id] = conversation
                self.found |= conversation.matched_by(self.op.call_sid) is not None

    def outcome(self, listing: _Done | None) -> FetchOutcome:
        """The conversations read, in the order asked, what they cost, and the listing's result."""
        listed = listing.result() if listing is not None else None
        kept = [self.fetched[c] for c in self.op.conversation_ids if c in self.fetched]
        return kept, self.spent, listed
