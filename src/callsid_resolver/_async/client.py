"""The client of the ElevenLabs conversations endpoints, over httpx.

The asyncio client is written by hand; `scripts/unasync.py` generates the blocking one from it.
Both drive the same sans-I/O pieces (`_core._api` builds and decodes, `_core._flow` decides and
retries) and only send, read and sleep; what differs beyond names is in `_concurrency`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

import httpx
from typing_extensions import Self, Unpack

from .._client_base import (
    DEFAULT_LIMITS,
    DEFAULT_TIMEOUT,
    ClientConfig,
    ListFilters,
    in_flight_bound,
    new_cursor,
)
from .._concurrency import (
    AsyncBackend,
    AsyncDeadlineGuard,
    AsyncInFlight,
    AsyncSleep,
    async_pool_transport,
)
from .._core import _api
from .._core._api import ApiCall, ListQuery, ModelT
from .._core._flow import Attempt, Outcome, retry_flow
from .._core._retry import RetryPolicy, RetryState
from .._core._secrets import redact_password
from .._models import Conversation, ConversationsPage, ConversationSummary, SignedUrl

__all__ = ["AsyncElevenLabsClient"]


class AsyncElevenLabsClient:
    """Client for the ElevenLabs conversations API (the asyncio and the blocking client have the
    same methods and options).

    The API key comes from `api_key` or the `ELEVENLABS_API_KEY` environment variable. Pass
    `base_url` (or set `ELEVENLABS_BASE_URL`) for a regional host (e.g.
    `https://api.eu.residency.elevenlabs.io`) or the emulator, and `http_client` to share your
    own `httpx.AsyncClient` (it is then yours to close). Share one client: it reuses its
    connection pool (the blocking client across threads); close it, or use it as a context
    manager.

    `limits` sizes the pool the client builds (20 connections by default), and at most
    `max_in_flight` requests (by default the pool's `max_connections`) are sent at once; the rest
    wait their turn within the call's deadline. With your own `http_client` or `transport`, no
    bound applies unless you pass `max_in_flight`: size it to that pool (docs/resolution.md).

    The asyncio client only: `backend="aiohttp"` (extra `callsid-resolver[aiohttp]`) sends through
    aiohttp's connection pool behind httpx's API (httpx-aiohttp), which keeps up better with
    hundreds of concurrent requests; it speaks HTTP/1.1 only, does not read proxy settings from
    the environment, and is ignored when you pass `http_client` or `transport`.

    `clock` (monotonic seconds) and `sleep` are how the client reads time and waits between
    attempts; tests pass fakes.
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
        backend: AsyncBackend = "httpx",
        clock: Callable[[], float] = time.monotonic,
        sleep: AsyncSleep = asyncio.sleep,
    ) -> None:
        self._config = ClientConfig(api_key, base_url=base_url)
        self.base_url = self._config.base_url
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        own_pool = http_client is None and transport is None
        chosen = async_pool_transport(backend, limits, own_pool=own_pool)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=timeout, limits=limits, transport=transport or chosen
        )
        # A client built here has no hooks or auth of its own, and a transport chosen here (or
        # given) routes every URL: its requests go to the transport straight, skipping the
        # per-request work of `send` (about a sixth of the client's CPU, issue #16); `_send`
        # keeps what of it applies (cookies; basic auth is in the merged headers). Without one,
        # httpx picks a transport per URL (proxies from the environment).
        self._direct = (transport or chosen) if http_client is None else None
        self._merged_headers = (
            self._config.merged_headers(self._http) if self._direct is not None else None
        )
        self.max_in_flight = in_flight_bound(max_in_flight, limits, own_pool=own_pool)
        self._in_flight = AsyncInFlight(self.max_in_flight, clock=clock)
        self._clock = clock
        self._sleep = sleep

    def __repr__(self) -> str:
        # The key stays out: reprs reach logs and tracebacks.
        return f"{type(self).__name__}(base_url={redact_password(self.base_url)!r})"

    def auth_headers(self) -> dict[str, str]:
        """The headers that authenticate to ElevenLabs, for a socket opened beside this client
        (the monitoring WebSocket takes `xi-api-key` too). Never log them."""
        return self._config.auth_headers()

    async def list_conversations(
        self, *, cursor: str | None = None, **filters: Unpack[ListFilters]
    ) -> ConversationsPage:
        """One page of conversations, newest first unless `sort_direction="asc"`."""
        call = _api.list_conversations(ListQuery(cursor=cursor, **filters))
        page, _ = await self.perform(call)
        return page

    async def iter_pages(self, **filters: Unpack[ListFilters]) -> AsyncIterator[ConversationsPage]:
        """Every page, following `next_cursor` until `has_more` is false, or until the server
        sends a cursor it sent before (a loop, logged as a warning)."""
        query: ListQuery | None = ListQuery(**filters)
        seen: set[str | None] = set()
        while query is not None and new_cursor(query, seen):
            page, _ = await self.perform(_api.list_conversations(query))
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
        conversation, _ = await self.perform(_api.get_conversation(conversation_id))
        return conversation

    async def get_signed_url(
        self, agent_id: str, *, include_conversation_id: bool = False
    ) -> SignedUrl:
        """A signed WebSocket URL for a private agent (valid 15 minutes to start a conversation)."""
        call = _api.get_signed_url(agent_id, include_conversation_id=include_conversation_id)
        signed, _ = await self.perform(call)
        return signed

    async def perform(
        self, call: ApiCall[ModelT], on_retry: Callable[[int], Any] | None = None
    ) -> tuple[ModelT, int]:
        """Send one API call with retries (the resolver's seam; users call the named methods).

        Returns the decoded model and the number of HTTP requests sent; `on_retry` hears the
        status of each answer about to be retried.
        """
        flow = retry_flow(
            call, self.retry, clock=self._clock, secrets=self._config.secrets, on_retry=on_retry
        )
        step = next(flow)
        while True:
            outcome: Outcome = None
            if isinstance(step, Attempt):
                try:
                    outcome = await self._attempt(call, step.state)
                except httpx.RequestError as exc:
                    outcome = exc
            else:
                await self._sleep(step.seconds)
            try:
                # Sent outside the `except` above: see `retry_flow`.
                step = flow.send(outcome)
            except StopIteration as done:
                result: tuple[ModelT, int] = done.value
                return result

    async def _attempt(self, call: ApiCall[Any], state: RetryState) -> httpx.Response:
        return await self._in_flight.run(state, lambda: self._exchange(call, state))

    async def _exchange(self, call: ApiCall[Any], state: RetryState) -> httpx.Response:
        """One request, its body read as a stream so that neither the deadline nor the body cap
        can be overrun: httpx's timeouts bound each read, not the whole (docs/protocol.md §10)."""
        # Built once a slot is held, so that the attempt's timeouts count from the send.
        request = self._config.request(
            self._http,
            call,
            state,
            timeout=self.timeout,
            now=self._clock(),
            merged_headers=self._merged_headers,
        )
        guard = AsyncDeadlineGuard(request, state.deadline_at - self._clock())
        response: httpx.Response | None = None
        try:
            response = await self._send(request)
            guard.watch(response)
            limit = call.body_limit(response.status_code)
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    break
                if self._clock() >= state.deadline_at:
                    raise httpx.ReadTimeout("total deadline reached while reading the body")
        finally:
            guard.cancel()  # first: a connection back in the pool must never be shut
            if response is not None:
                await response.aclose()
        return self._config.finish(call, request, response, bytes(body[: limit + 1]))

    async def _send(self, request: httpx.Request) -> httpx.Response:
        if self._direct is None:
            return await self._http.send(request, stream=True)
        if self._http.is_closed:
            # What `send` says: the pool must not open connections after `aclose`.
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        # The cookie round trip of `send` (a load balancer's affinity cookie), paid only when
        # a server sets one: extracting them on every response cost about 8% of the CPU.
        jar = self._http.cookies
        if jar:
            jar.set_cookie_header(request)
        response = await self._direct.handle_async_request(request)
        if "set-cookie" in response.headers:
            response.request = request
            jar.extract_cookies(response)
        return response

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
