"""The concurrency pieces that differ between the twins beyond names, written by hand in pairs.

`scripts/unasync.py` turns each `Async...` name of an `_async` module into its blocking twin
here (`AsyncInFlight` into `InFlight`, ...), so each pair keeps the same methods.
For the clients: the in-flight bound (an asyncio or a thread semaphore), how an attempt is held
to the call's deadline (`asyncio.wait_for`, or a watchdog that shuts a stalled socket), the
default transport, and the type of an injected `sleep`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar
from urllib.request import getproxies

import httpx

from ._core._retry import RetryState
from ._shards import ShardedTransport
from ._watchdog import Watchdog

__all__ = [
    "AIOHTTP_HINT",
    "AsyncBackend",
    "AsyncDeadlineGuard",
    "AsyncInFlight",
    "AsyncSleep",
    "Backend",
    "DeadlineGuard",
    "InFlight",
    "Sleep",
    "async_pool_transport",
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
            return await asyncio.wait_for(self._in_slot(exchange), left)
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
    """The blocking client's transport: httpx's own (None); `backend` can only be "httpx"."""
    if backend != "httpx":
        raise ValueError(f"the blocking client sends through 'httpx' only, got {backend!r}")
    return None


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
