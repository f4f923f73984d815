"""`ElevenLabsClient` and `AsyncElevenLabsClient`: the conversations endpoints over httpx.

Both twins drive the same sans-I/O pieces (`_core._api` builds and decodes, `_core._retry`
decides); each only sends, sleeps and loops, in its own I/O style.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any, Literal, TypedDict
from urllib.request import getproxies

import httpx
from typing_extensions import Self, Unpack

from .__version__ import __version__
from ._core import _api
from ._core._api import ApiCall, ListQuery, ModelT, SortDirection
from ._core._retry import RetryPolicy, RetryState
from ._core._secrets import redact_password, scrub
from ._exceptions import ApiError, DeadlineExceeded, InvalidApiKey, MissingApiKey, TransportError
from ._models import Conversation, ConversationsPage, ConversationSummary, SignedUrl
from ._shards import ShardedTransport
from ._watchdog import Watchdog

__all__ = [
    "DEFAULT_BASE_URL",
    "AsyncElevenLabsClient",
    "ElevenLabsClient",
    "ListFilters",
    "validate_api_key",
]

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=20)
AIOHTTP_HINT = "backend='aiohttp' needs httpx-aiohttp: pip install 'callsid-resolver[aiohttp]'"
API_KEY_ENV = "ELEVENLABS_API_KEY"
BASE_URL_ENV = "ELEVENLABS_BASE_URL"

logger = logging.getLogger("callsid_resolver")
# Framing headers of the wire body; a body rebuilt from the bytes already decoded drops them.
_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def validate_api_key(key: str) -> str:
    """The key without surrounding whitespace, or `InvalidApiKey` saying what is wrong with it.

    Keys are read from files and environment variables, so a trailing newline is common; a key
    that still holds a control or non-ASCII character cannot be sent in an HTTP header, and the
    error says where the character is, never what the key is.
    """
    if not isinstance(key, str):
        raise InvalidApiKey(f"expected a string, got {type(key).__name__}")
    stripped = key.strip()
    if not stripped:
        raise InvalidApiKey("it is blank")
    for position, ch in enumerate(stripped):
        if not " " <= ch <= "~":
            kind = "a non-ASCII" if ord(ch) > 0x7E else "a control"
            raise InvalidApiKey(
                f"it holds {kind} character (U+{ord(ch):04X}) at position {position} of "
                f"{len(stripped)}; keys are printable ASCII"
            )
    return stripped


class ListFilters(TypedDict, total=False):
    """Filters of `list_conversations` and the page iterators (see `ListQuery`)."""

    page_size: int
    agent_id: str
    call_start_after_unix: int
    call_start_before_unix: int
    phone_number_ids: list[str] | tuple[str, ...]
    conversation_initiation_source: str
    dynamic_variable_filter: str
    exclude_statuses: list[str] | tuple[str, ...]
    sort_direction: SortDirection


class _ClientBase:
    """Configuration and request building shared by both twins."""

    def __init__(
        self, api_key: str | None, base_url: str | None, timeout: httpx.Timeout, retry: RetryPolicy
    ) -> None:
        # Set by each twin: how many requests may be in flight at once (None: no bound).
        self.max_in_flight: int | None = None
        raw = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        if raw is None or (api_key is None and not raw.strip()):
            raise MissingApiKey(API_KEY_ENV)
        key = validate_api_key(raw)
        if base_url is None:
            base_url = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        try:
            url = httpx.URL(base_url)
        except (httpx.InvalidURL, TypeError, ValueError):
            raise ValueError("base_url is not a valid URL") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http(s) URL, got {redact_password(url)!r}")
        self.base_url = str(url).rstrip("/")
        self.timeout = timeout
        self.retry = retry
        # What no text shown to a user may hold, however it got there (a server's echo).
        password = url.userinfo.partition(b":")[2].decode("ascii", "replace")
        self._secrets = (key, url.password, password) if url.password else (key,)
        self._headers = {
            "xi-api-key": key,
            "accept": "application/json",
            "user-agent": f"callsid-resolver/{__version__} httpx/{httpx.__version__}",
        }
        self._clock: Callable[[], float] = time.monotonic

    def auth_headers(self) -> dict[str, str]:
        """The headers that authenticate to ElevenLabs, for a socket opened beside this client
        (the monitoring WebSocket takes `xi-api-key` too). Never log them."""
        return {"xi-api-key": self._headers["xi-api-key"]}

    def __repr__(self) -> str:
        # The key stays out: reprs reach logs and tracebacks.
        return f"{type(self).__name__}(base_url={redact_password(self.base_url)!r})"

    def _set_bound(self, max_in_flight: int | None, limits: httpx.Limits, own_pool: bool) -> None:
        """Bound in-flight requests to the pool's size (for a pool we build; otherwise only to
        what the caller passed): a request then waits for a slot in our queue, whose wait counts
        against the call's deadline only, instead of in httpx's pool, whose `pool` timeout it
        would exhaust under a burst and whose connection assignment grows with the queue."""
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        if max_in_flight is None and own_pool:
            max_in_flight = limits.max_connections
        self.max_in_flight = max_in_flight

    def _request(
        self, http: httpx.Client | httpx.AsyncClient, call: ApiCall[Any], state: RetryState
    ) -> httpx.Request:
        t = state.attempt_timeout(self.timeout, self._clock())
        return http.build_request(
            call.method,
            self.base_url + call.path,
            params=call.params,
            headers=self._headers,
            timeout=httpx.Timeout(
                connect=t["connect"], read=t["read"], write=t["write"], pool=t["pool"]
            ),
        )

    def _give_up(
        self, call: ApiCall[Any], state: RetryState, exc: Exception
    ) -> tuple[TransportError, Exception]:
        """The error to raise, and the cause to chain to it: a copy of `exc` without its request,
        whose headers hold the API key, and with the secrets scrubbed from its text."""
        cls = DeadlineExceeded if state.out_of_time else TransportError
        text = scrub(str(exc), self._secrets)
        error = cls(
            f"{type(exc).__name__}: {text}" if text else type(exc).__name__,
            method=call.method,
            path=call.path,
            attempts=state.attempts,
        )
        try:
            cause: Exception = type(exc)(text)
        except Exception:  # an exception class with another signature
            cause = httpx.TransportError(text)
        return error, cause

    def _finish(
        self, call: ApiCall[Any], request: httpx.Request, response: httpx.Response, body: bytes
    ) -> httpx.Response:
        """The response rebuilt around the body read so far (decoded, so without its framing)."""
        if len(body) <= call.body_limit(response.status_code):
            # Read whole: an event hook that kept the streamed response (the doctor keeps every
            # one) can still `.read()` it, as httpx's own cache of a read body.
            response._content = body
        headers = [(k, v) for k, v in response.headers.multi_items() if k not in _FRAMING]
        done = httpx.Response(response.status_code, headers=headers, content=body, request=request)
        if response.is_success and len(body) > call.max_body:
            raise call.too_large(done)
        return done

    def _decode(self, call: ApiCall[ModelT], response: httpx.Response, state: RetryState) -> ModelT:
        try:
            return call.decode(response, secrets=self._secrets)
        except ApiError as exc:
            exc.attempts = state.attempts  # so that a caller counting requests counts retries
            raise

    @staticmethod
    def _log(call: ApiCall[Any], outcome: str, state: RetryState) -> None:
        logger.debug("%s %s -> %s (attempt %d)", call.method, call.path, outcome, state.attempts)


class ElevenLabsClient(_ClientBase):
    """Blocking client for the ElevenLabs conversations API.

    The API key comes from `api_key` or the `ELEVENLABS_API_KEY` environment variable. Pass
    `base_url` (or set `ELEVENLABS_BASE_URL`) for a regional host (e.g.
    `https://api.eu.residency.elevenlabs.io`) or the emulator,
    and `http_client` to share your own `httpx.Client` (it is then yours to close). The client is
    thread-safe and reuses its connection pool; close it, or use it as a context manager.

    `limits` sizes the pool the client builds (20 connections by default), and at most
    `max_in_flight` requests (by default the pool's `max_connections`) are sent at once; the rest
    wait their turn within the call's deadline. With your own `http_client` or `transport`, no
    bound applies unless you pass `max_in_flight`: size it to that pool (docs/resolution.md).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        limits: httpx.Limits = DEFAULT_LIMITS,
        max_in_flight: int | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout, retry or RetryPolicy())
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=timeout, limits=limits, transport=transport
        )
        self._set_bound(max_in_flight, limits, http_client is None and transport is None)
        self._slots = (
            None if self.max_in_flight is None else threading.BoundedSemaphore(self.max_in_flight)
        )
        self._sleep: Callable[[float], None] = time.sleep

    def list_conversations(
        self, *, cursor: str | None = None, **filters: Unpack[ListFilters]
    ) -> ConversationsPage:
        """One page of conversations, newest first unless `sort_direction="asc"`."""
        return self.perform(_api.list_conversations(ListQuery(cursor=cursor, **filters)))[0]

    def iter_pages(self, **filters: Unpack[ListFilters]) -> Iterator[ConversationsPage]:
        """Every page, following `next_cursor` until `has_more` is false, or until the server
        sends a cursor it sent before (a loop, logged as a warning)."""
        query: ListQuery | None = ListQuery(**filters)
        seen: set[str | None] = set()
        while query is not None and _new_cursor(query, seen):
            page = self.perform(_api.list_conversations(query))[0]
            yield page
            query = query.next(page)

    def iter_conversations(self, **filters: Unpack[ListFilters]) -> Iterator[ConversationSummary]:
        """Every conversation summary, across pages."""
        for page in self.iter_pages(**filters):
            yield from page.conversations

    def get_conversation(self, conversation_id: str) -> Conversation:
        """The full conversation, with `metadata.phone_call` and the transcript."""
        return self.perform(_api.get_conversation(conversation_id))[0]

    def get_signed_url(self, agent_id: str, *, include_conversation_id: bool = False) -> SignedUrl:
        """A signed WebSocket URL for a private agent (valid 15 minutes to start a conversation)."""
        return self.perform(
            _api.get_signed_url(agent_id, include_conversation_id=include_conversation_id)
        )[0]

    def perform(
        self, call: ApiCall[ModelT], on_retry: Callable[[int], Any] | None = None
    ) -> tuple[ModelT, int]:
        """Send one API call with retries (the resolver's seam; users call the named methods).

        Returns the decoded model and the number of HTTP requests sent; `on_retry` hears the
        status of each answer about to be retried.
        """
        state = self.retry.start(self._clock())
        while True:
            fault: httpx.RequestError | None = None
            try:
                response = self._attempt(call, state)
            except httpx.RequestError as exc:
                fault = exc
            if fault is not None:
                # Raised outside the `except`, so the original (its request holds the key) is
                # neither the cause nor the context of what the caller sees.
                self._log(call, type(fault).__name__, state)
                delay = state.after_fault(self._clock())
                if delay is None:
                    error, cause = self._give_up(call, state, fault)
                    raise error from cause
            else:
                self._log(call, str(response.status_code), state)
                delay = state.after_response(response.status_code, response.headers, self._clock())
                if delay is None:
                    return self._decode(call, response, state), state.attempts
                if on_retry is not None:  # the status of an answer about to be retried (a 429)
                    on_retry(response.status_code)
            self._sleep(delay)

    def _attempt(self, call: ApiCall[Any], state: RetryState) -> httpx.Response:
        """One request in one of the `max_in_flight` slots (see `_ClientBase._set_bound`)."""
        if self._slots is None:
            return self._exchange(call, state)
        if not self._slots.acquire(timeout=max(state.deadline_at - self._clock(), 0.0)):
            state.attempt_timeout(self.timeout, self._clock())  # counted: it was tried
            raise httpx.PoolTimeout(f"no request slot of {self.max_in_flight} freed in time")
        try:
            return self._exchange(call, state)
        finally:
            self._slots.release()

    def _exchange(self, call: ApiCall[Any], state: RetryState) -> httpx.Response:
        """One request, its body read as a stream so that neither the deadline nor the body cap
        can be overrun: httpx's timeouts bound each read, not the whole (docs/protocol.md §10)."""
        request = self._request(self._http, call, state)
        watchdog = Watchdog(state.deadline_at - self._clock())
        request.extensions["trace"] = watchdog.trace
        response: httpx.Response | None = None
        try:
            response = self._http.send(request, stream=True)
            watchdog.watch(response)
            limit = call.body_limit(response.status_code)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limit:
                    break
                if self._clock() >= state.deadline_at:
                    raise httpx.ReadTimeout("total deadline reached while reading the body")
        finally:
            watchdog.cancel()  # first: a connection back in the pool must never be shut
            if response is not None:
                response.close()
        return self._finish(call, request, response, bytes(body[: limit + 1]))

    def close(self) -> None:
        """Close the HTTP connections, unless the client was given its own `http_client`."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncElevenLabsClient(_ClientBase):
    """The `asyncio` twin of `ElevenLabsClient`, with the same methods as coroutines.

    `limits` and `max_in_flight` as in `ElevenLabsClient`. `backend="aiohttp"` (extra
    `callsid-resolver[aiohttp]`) sends through aiohttp's connection pool behind httpx's API
    (httpx-aiohttp), which keeps up better with hundreds of concurrent requests; it speaks
    HTTP/1.1 only, does not read proxy settings from the environment, and is ignored when you
    pass `http_client` or `transport`.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        limits: httpx.Limits = DEFAULT_LIMITS,
        max_in_flight: int | None = None,
        backend: Literal["httpx", "aiohttp"] = "httpx",
    ) -> None:
        super().__init__(api_key, base_url, timeout, retry or RetryPolicy())
        self._owns_http = http_client is None
        own_pool = http_client is None and transport is None
        if backend not in ("httpx", "aiohttp"):
            raise ValueError(f"backend must be 'httpx' or 'aiohttp', got {backend!r}")
        if backend == "aiohttp" and own_pool:
            transport = _aiohttp_transport(limits)
        elif own_pool and limits.max_connections and not _env_proxies():
            # httpx's pool in small pools (see `_shards`); with a proxy from the environment,
            # httpx's own transport, which is the one that honours it.
            transport = ShardedTransport(limits)
        self._http = http_client or httpx.AsyncClient(
            timeout=timeout, limits=limits, transport=transport
        )
        self._set_bound(max_in_flight, limits, own_pool)
        self._slots = None if self.max_in_flight is None else asyncio.Semaphore(self.max_in_flight)
        self._sleep: Callable[[float], Any] = asyncio.sleep

    async def list_conversations(
        self, *, cursor: str | None = None, **filters: Unpack[ListFilters]
    ) -> ConversationsPage:
        """One page of conversations, newest first unless `sort_direction="asc"`."""
        return (await self.perform(_api.list_conversations(ListQuery(cursor=cursor, **filters))))[0]

    async def iter_pages(self, **filters: Unpack[ListFilters]) -> AsyncIterator[ConversationsPage]:
        """Every page; see `ElevenLabsClient.iter_pages`."""
        query: ListQuery | None = ListQuery(**filters)
        seen: set[str | None] = set()
        while query is not None and _new_cursor(query, seen):
            page = (await self.perform(_api.list_conversations(query)))[0]
            yield page
            query = query.next(page)

    async def iter_conversations(
        self, **filters: Unpack[ListFilters]
    ) -> AsyncIterator[ConversationSummary]:
        """Every conversation summary, across pages."""
        async for page in self.iter_pages(**filters):
            for summary in page.conversations:
                yield summary

    async def get_conversation(self, conversation_id: str) -> Conversation:
        """The full conversation, with `metadata.phone_call` and the transcript."""
        return (await self.perform(_api.get_conversation(conversation_id)))[0]

    async def get_signed_url(
        self, agent_id: str, *, include_conversation_id: bool = False
    ) -> SignedUrl:
        """A signed WebSocket URL for a private agent (valid 15 minutes to start a conversation)."""
        call = _api.get_signed_url(agent_id, include_conversation_id=include_conversation_id)
        return (await self.perform(call))[0]

    async def perform(
        self, call: ApiCall[ModelT], on_retry: Callable[[int], Any] | None = None
    ) -> tuple[ModelT, int]:
        """Send one API call with retries (the resolver's seam; users call the named methods).

        Returns the decoded model and the number of HTTP requests sent; `on_retry` hears the
        status of each answer about to be retried.
        """
        state = self.retry.start(self._clock())
        while True:
            fault: httpx.RequestError | None = None
            try:
                response = await self._attempt(call, state)
            except httpx.RequestError as exc:
                fault = exc
            if fault is not None:
                # Raised outside the `except`: see `ElevenLabsClient.perform`.
                self._log(call, type(fault).__name__, state)
                delay = state.after_fault(self._clock())
                if delay is None:
                    error, cause = self._give_up(call, state, fault)
                    raise error from cause
            else:
                self._log(call, str(response.status_code), state)
                delay = state.after_response(response.status_code, response.headers, self._clock())
                if delay is None:
                    return self._decode(call, response, state), state.attempts
                if on_retry is not None:  # the status of an answer about to be retried (a 429)
                    on_retry(response.status_code)
            await self._sleep(delay)

    async def _attempt(self, call: ApiCall[Any], state: RetryState) -> httpx.Response:
        """One request, bounded as a whole by the time left (docs/protocol.md §10), the wait
        for a slot included (see `_ClientBase._set_bound`)."""
        left = max(state.deadline_at - self._clock(), 0.001)
        slots = self._slots
        sent = state.attempts
        try:
            if slots is None:
                return await asyncio.wait_for(self._exchange(call, state), left)
            return await asyncio.wait_for(self._bounded(slots, call, state), left)
        except asyncio.TimeoutError:
            if state.attempts == sent:  # never sent, it waited for a slot: counted all the same
                state.attempt_timeout(self.timeout, self._clock())
                message = f"no request slot of {self.max_in_flight} freed in time"
                raise httpx.PoolTimeout(message) from None
            raise httpx.ReadTimeout("total deadline reached during the request") from None

    async def _bounded(
        self, slots: asyncio.Semaphore, call: ApiCall[Any], state: RetryState
    ) -> httpx.Response:
        async with slots:
            return await self._exchange(call, state)

    async def _exchange(self, call: ApiCall[Any], state: RetryState) -> httpx.Response:
        # Built once a slot is held, so that the attempt's timeouts count from the send.
        request = self._request(self._http, call, state)
        response = await self._http.send(request, stream=True)
        try:
            limit = call.body_limit(response.status_code)
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    break
        finally:
            await response.aclose()
        return self._finish(call, request, response, bytes(body[: limit + 1]))

    async def aclose(self) -> None:
        """Close the HTTP connections, unless the client was given its own `http_client`."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


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


def _new_cursor(query: ListQuery, seen: set[str | None]) -> bool:
    """Whether `query`'s cursor is new to this walk (and remember it): a server cycling cursors
    A→B→A would otherwise be followed forever (docs/protocol.md §2)."""
    if query.cursor in seen:
        logger.warning("the list endpoint sent a cursor it had sent before; stopping there")
        return False
    seen.add(query.cursor)
    return True
