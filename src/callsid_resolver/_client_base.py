"""What both clients share and do without I/O: their options, the key and URL checks, the
request each attempt sends and the response rebuilt around the body it read.

`_async/client.py` (by hand) and `_sync/client.py` (generated from it by `scripts/unasync.py`)
hold a `ClientConfig`; what differs beyond names is in `_concurrency.py`.
"""

from __future__ import annotations

import logging
import os
from base64 import b64encode
from typing import Any, TypedDict

import httpx

from .__version__ import __version__
from ._core._api import ApiCall, ListQuery, SortDirection
from ._core._retry import RetryState
from ._core._secrets import redact_password
from ._exceptions import InvalidApiKey, MissingApiKey

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "ClientConfig",
    "ListFilters",
    "in_flight_bound",
    "new_cursor",
    "validate_api_key",
]

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=20)
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


class ClientConfig:
    """A client's key and base URL, checked once, and the non-I/O steps of each attempt."""

    def __init__(self, api_key: str | None, *, base_url: str | None) -> None:
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
        # What no text shown to a user may hold, however it got there (a server's echo).
        password = url.userinfo.partition(b":")[2].decode("ascii", "replace")
        self.secrets = (key, url.password, password) if url.password else (key,)
        self._headers = {
            "xi-api-key": key,
            "accept": "application/json",
            "user-agent": f"callsid-resolver/{__version__} httpx/{httpx.__version__}",
        }
        # What `send` adds for a URL with user:password (a gateway in front of the API), for the
        # requests built without it. Never log it.
        self._basic_auth = (
            "Basic " + b64encode(f"{url.username}:{url.password}".encode()).decode("ascii")
            if url.username or url.password
            else None
        )

    def __repr__(self) -> str:
        # The key stays out: reprs reach logs and tracebacks.
        return f"ClientConfig(base_url={redact_password(self.base_url)!r})"

    def auth_headers(self) -> dict[str, str]:
        """The headers that authenticate to ElevenLabs. Never log them."""
        return {"xi-api-key": self._headers["xi-api-key"]}

    def request(
        self,
        http: httpx.Client | httpx.AsyncClient,
        call: ApiCall[Any],
        state: RetryState,
        *,
        timeout: httpx.Timeout,
        now: float,
        merged_headers: httpx.Headers | None = None,
    ) -> httpx.Request:
        """The request of the next attempt of `call` (counted by `state`), its timeouts shrunk so
        that it cannot outlive the call's deadline.

        `merged_headers` are the client's own headers merged with ours, for a client this library
        built: the request is then built without `build_request`, whose URL merge parses the URL
        twice more (about half of the cost of building a request, issue #16); a caller's client
        goes through `build_request`, which applies whatever defaults it was given.
        """
        t = state.attempt_timeout(timeout, now)
        if merged_headers is None:
            return http.build_request(
                call.method,
                self.base_url + call.path,
                params=call.params,
                headers=self._headers,
                extensions={"timeout": t},
            )
        url = self.base_url + call.path
        if call.params:
            # httpx's own encoding, so that the query is the one `build_request` would send.
            url += "?" + str(httpx.QueryParams(call.params))
        return httpx.Request(call.method, url, headers=merged_headers, extensions={"timeout": t})

    def merged_headers(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Headers:
        """`http`'s default headers with ours on top, as `build_request` merges them, and the
        basic auth `send` derives from a base URL's user:password."""
        merged = httpx.Headers(http.headers)
        merged.update(self._headers)
        if self._basic_auth is not None:
            merged["authorization"] = self._basic_auth
        return merged

    @staticmethod
    def finish(
        call: ApiCall[Any], request: httpx.Request, response: httpx.Response, body: bytes
    ) -> httpx.Response:
        """The response rebuilt around the body read so far (decoded, so without its framing),
        or `ResponseTooLarge` for a success body over the endpoint's cap."""
        if len(body) <= call.body_limit(response.status_code):
            # Read whole: an event hook that kept the streamed response (the doctor keeps every
            # one) can still `.read()` it, as httpx's own cache of a read body.
            response._content = body
        headers = [(k, v) for k, v in response.headers.multi_items() if k not in _FRAMING]
        done = httpx.Response(response.status_code, headers=headers, content=body, request=request)
        if response.is_success and len(body) > call.max_body:
            raise call.too_large(done)
        return done


def in_flight_bound(
    max_in_flight: int | None, limits: httpx.Limits, *, own_pool: bool
) -> int | None:
    """How many requests a client sends at once (None: no bound): what the caller passed, else
    the size of a pool the client builds itself.

    A request then waits for a slot in the client's own queue, whose wait counts against the
    call's deadline only, instead of in httpx's pool, whose `pool` timeout it would exhaust under
    a burst and whose connection assignment grows with the queue.
    """
    if max_in_flight is not None and max_in_flight < 1:
        raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
    if max_in_flight is None and own_pool:
        return limits.max_connections
    return max_in_flight


def new_cursor(query: ListQuery, seen: set[str | None]) -> bool:
    """Whether `query`'s cursor is new to this walk (and remember it): a server cycling cursors
    A→B→A would otherwise be followed forever (docs/protocol.md §2)."""
    if query.cursor in seen:
        logger.warning("the list endpoint sent a cursor it had sent before; stopping there")
        return False
    seen.add(query.cursor)
    return True
