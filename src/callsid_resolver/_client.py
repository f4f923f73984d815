"""`ElevenLabsClient` and `AsyncElevenLabsClient`: the conversations endpoints over httpx.

Both twins drive the same sans-I/O pieces (`_core._api` builds and decodes, `_core._retry`
decides); each only sends, sleeps and loops, in its own I/O style.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any, TypedDict

import httpx
from typing_extensions import Self, Unpack

from .__version__ import __version__
from ._core import _api
from ._core._api import ApiCall, ListQuery, ModelT, SortDirection
from ._core._retry import RetryPolicy, RetryState
from ._exceptions import DeadlineExceeded, MissingApiKey, TransportError
from ._models import Conversation, ConversationsPage, ConversationSummary, SignedUrl

__all__ = ["DEFAULT_BASE_URL", "AsyncElevenLabsClient", "ElevenLabsClient", "ListFilters"]

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=20)
API_KEY_ENV = "ELEVENLABS_API_KEY"
BASE_URL_ENV = "ELEVENLABS_BASE_URL"

logger = logging.getLogger("callsid_resolver")


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
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        if not key:
            raise MissingApiKey(API_KEY_ENV)
        if base_url is None:
            base_url = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.base_url = str(url).rstrip("/")
        self.timeout = timeout
        self.retry = retry
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
        return f"{type(self).__name__}(base_url={self.base_url!r})"

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

    def _give_up(self, call: ApiCall[Any], state: RetryState, exc: Exception) -> TransportError:
        cls = DeadlineExceeded if state.out_of_time else TransportError
        return cls(
            f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
            method=call.method,
            path=call.path,
            attempts=state.attempts,
        )

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
    ) -> None:
        super().__init__(api_key, base_url, timeout, retry or RetryPolicy())
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=timeout, limits=DEFAULT_LIMITS, transport=transport
        )
        self._sleep: Callable[[float], None] = time.sleep

    def list_conversations(
        self, *, cursor: str | None = None, **filters: Unpack[ListFilters]
    ) -> ConversationsPage:
        """One page of conversations, newest first unless `sort_direction="asc"`."""
        return self._call(_api.list_conversations(ListQuery(cursor=cursor, **filters)))[0]

    def iter_pages(self, **filters: Unpack[ListFilters]) -> Iterator[ConversationsPage]:
        """Every page, following `next_cursor` until `has_more` is false."""
        query: ListQuery | None = ListQuery(**filters)
        while query is not None:
            page = self._call(_api.list_conversations(query))[0]
            yield page
            query = query.next(page)

    def iter_conversations(self, **filters: Unpack[ListFilters]) -> Iterator[ConversationSummary]:
        """Every conversation summary, across pages."""
        for page in self.iter_pages(**filters):
            yield from page.conversations

    def get_conversation(self, conversation_id: str) -> Conversation:
        """The full conversation, with `metadata.phone_call` and the transcript."""
        return self._call(_api.get_conversation(conversation_id))[0]

    def get_signed_url(self, agent_id: str, *, include_conversation_id: bool = False) -> SignedUrl:
        """A signed WebSocket URL for a private agent (valid 15 minutes to start a conversation)."""
        return self._call(
            _api.get_signed_url(agent_id, include_conversation_id=include_conversation_id)
        )[0]

    def _call(self, call: ApiCall[ModelT]) -> tuple[ModelT, int]:
        """Send with retries; return the decoded model and the number of HTTP requests sent."""
        state = self.retry.start(self._clock())
        while True:
            try:
                response = self._http.send(self._request(self._http, call, state))
            except httpx.TransportError as exc:
                self._log(call, type(exc).__name__, state)
                delay = state.after_fault(self._clock())
                if delay is None:
                    raise self._give_up(call, state, exc) from exc
            else:
                self._log(call, str(response.status_code), state)
                delay = state.after_response(response.status_code, response.headers, self._clock())
                if delay is None:
                    return call.decode(response), state.attempts
            self._sleep(delay)

    def close(self) -> None:
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
    """The `asyncio` twin of `ElevenLabsClient`, with the same methods as coroutines."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout, retry or RetryPolicy())
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=timeout, limits=DEFAULT_LIMITS, transport=transport
        )
        self._sleep: Callable[[float], Any] = asyncio.sleep

    async def list_conversations(
        self, *, cursor: str | None = None, **filters: Unpack[ListFilters]
    ) -> ConversationsPage:
        """One page of conversations, newest first unless `sort_direction="asc"`."""
        return (await self._call(_api.list_conversations(ListQuery(cursor=cursor, **filters))))[0]

    async def iter_pages(self, **filters: Unpack[ListFilters]) -> AsyncIterator[ConversationsPage]:
        """Every page, following `next_cursor` until `has_more` is false."""
        query: ListQuery | None = ListQuery(**filters)
        while query is not None:
            page = (await self._call(_api.list_conversations(query)))[0]
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
        return (await self._call(_api.get_conversation(conversation_id)))[0]

    async def get_signed_url(
        self, agent_id: str, *, include_conversation_id: bool = False
    ) -> SignedUrl:
        """A signed WebSocket URL for a private agent (valid 15 minutes to start a conversation)."""
        call = _api.get_signed_url(agent_id, include_conversation_id=include_conversation_id)
        return (await self._call(call))[0]

    async def _call(self, call: ApiCall[ModelT]) -> tuple[ModelT, int]:
        """Send with retries; return the decoded model and the number of HTTP requests sent."""
        state = self.retry.start(self._clock())
        while True:
            try:
                response = await self._http.send(self._request(self._http, call, state))
            except httpx.TransportError as exc:
                self._log(call, type(exc).__name__, state)
                delay = state.after_fault(self._clock())
                if delay is None:
                    raise self._give_up(call, state, exc) from exc
            else:
                self._log(call, str(response.status_code), state)
                delay = state.after_response(response.status_code, response.headers, self._clock())
                if delay is None:
                    return call.decode(response), state.attempts
            await self._sleep(delay)

    async def aclose(self) -> None:
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
