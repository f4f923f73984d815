"""The three endpoints we call, as data: how to build each request and how to read its answer.

Paths and parameters are those of the official SDK 2.78.0 (`conversational_ai/conversations/
raw_client.py`); multi-valued parameters repeat their key (`k=a&k=b`), as the SDK sends them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from .._exceptions import (
    ApiError,
    InvalidConversationId,
    RateLimited,
    ResponseTooLarge,
    UnexpectedResponse,
    error_class_for,
)
from .._models import Conversation, ConversationsPage, SignedUrl
from ._retry import retry_after
from ._secrets import scrub_value

__all__ = [
    "CONVERSATION_MAX_BODY",
    "ERROR_MAX_BODY",
    "LIST_MAX_BODY",
    "LIST_PATH",
    "MAX_ID_LENGTH",
    "MAX_PAGE_SIZE",
    "REQUEST_ID_HEADER",
    "SIGNED_URL_MAX_BODY",
    "SIGNED_URL_PATH",
    "TRACE_ID_HEADER",
    "ApiCall",
    "ListQuery",
    "SortDirection",
    "get_conversation",
    "get_signed_url",
    "list_conversations",
    "path_segment",
    "validate_conversation_id",
]

ModelT = TypeVar("ModelT", bound=BaseModel)
ErrorT = TypeVar("ErrorT", bound=ApiError)

LIST_PATH = "/v1/convai/conversations"
SIGNED_URL_PATH = "/v1/convai/conversation/get-signed-url"
MAX_PAGE_SIZE = 100
REQUEST_ID_HEADER = "request-id"
# Third-party captures of error replies show no `request-id` header, and `x-trace-id` equal to
# the typed body's `detail.request_id` (docs/protocol.md §12).
TRACE_ID_HEADER = "x-trace-id"

# Body caps per endpoint (docs/protocol.md §10): far above any real answer (a page is at most
# 100 summaries; a conversation's transcript of a long call is a few MB), far below what would
# exhaust memory while parsing. An error body is only read for its message.
LIST_MAX_BODY = 8 * 1024 * 1024
CONVERSATION_MAX_BODY = 32 * 1024 * 1024
SIGNED_URL_MAX_BODY = 64 * 1024
ERROR_MAX_BODY = 64 * 1024
MAX_ID_LENGTH = 256

SortDirection = Literal["asc", "desc"]


@dataclass(frozen=True)
class ListQuery:
    """The filters of `GET /v1/convai/conversations` that this library uses.

    `None` leaves a parameter out; sequences become repeated keys.
    """

    cursor: str | None = None
    page_size: int | None = None
    agent_id: str | None = None
    call_start_after_unix: int | None = None
    call_start_before_unix: int | None = None
    phone_number_ids: Sequence[str] | None = None
    conversation_initiation_source: str | None = None
    dynamic_variable_filter: str | None = None
    exclude_statuses: Sequence[str] | None = None
    sort_direction: SortDirection | None = None

    def __post_init__(self) -> None:
        if self.page_size is not None and not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        for name in ("phone_number_ids", "exclude_statuses"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(f"{name} takes a sequence of strings, not one string")
            if value is not None:
                object.__setattr__(self, name, tuple(value))

    def params(self) -> list[tuple[str, str]]:
        """The query string of `GET /v1/convai/conversations`, unset fields left out
        (docs/protocol.md §2).
        """
        out: list[tuple[str, str]] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, tuple):
                out.extend((f.name, str(v)) for v in value)
            else:
                out.append((f.name, str(value)))
        return out

    def next(self, page: ConversationsPage) -> ListQuery | None:
        """The query for the page after `page`, or None when it was the last."""
        if not page.has_more or not page.next_cursor or page.next_cursor == self.cursor:
            return None
        return replace(self, cursor=page.next_cursor)


@dataclass(frozen=True)
class ApiCall(Generic[ModelT]):
    """One endpoint call: its request line and the model its success body decodes into."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...]
    model: type[ModelT]
    max_body: int = LIST_MAX_BODY

    def body_limit(self, status_code: int) -> int:
        """How many bytes of a body with this status are worth reading."""
        return self.max_body if 200 <= status_code < 300 else ERROR_MAX_BODY

    def too_large(self, response: httpx.Response) -> ResponseTooLarge:
        """The error for a success body over `max_body` (only its first bytes were read)."""
        detail = f"response body larger than {self.max_body} bytes; not read further"
        return self._error(response, ResponseTooLarge, detail, limit=self.max_body)

    def decode(self, response: httpx.Response, *, secrets: Sequence[str] = ()) -> ModelT:
        """The model, or the `ApiError` subclass that the status and body call for; `secrets`
        are scrubbed from any text the server echoed."""
        if response.is_success:
            try:
                return self.model.model_validate_json(response.content)
            except ValidationError as exc:
                raise self._error(response, UnexpectedResponse, _summarise(exc)) from None
        return self._raise_for_status(response, tuple(secrets))

    def _raise_for_status(self, response: httpx.Response, secrets: tuple[str, ...]) -> ModelT:
        cls = error_class_for(response.status_code)
        extra = {"retry_after": retry_after(response.headers)} if cls is RateLimited else {}
        # A 401 detail or a proxy's 502 page may echo the key that was sent.
        raise self._error(response, cls, scrub_value(_detail(response), secrets), **extra)

    def _error(
        self, response: httpx.Response, cls: type[ErrorT], detail: Any, **extra: Any
    ) -> ErrorT:
        return cls(
            status_code=response.status_code,
            method=self.method,
            path=self.path,
            detail=detail,
            request_id=_request_id(response, detail),
            headers=_safe_headers(response),
            **extra,
        )


def list_conversations(query: ListQuery) -> ApiCall[ConversationsPage]:
    return ApiCall("GET", LIST_PATH, tuple(query.params()), ConversationsPage, LIST_MAX_BODY)


def validate_conversation_id(conversation_id: object) -> str:
    """The id unchanged, or `InvalidConversationId` saying what is wrong with it.

    The id becomes a path segment: `.` and `..` would be resolved away by URL normalisation and a
    slash would add a segment, so they are refused; other reserved characters are encoded
    (`path_segment`). The message shows at most the first 40 characters of the id.
    """
    if not isinstance(conversation_id, str):
        raise InvalidConversationId(f"expected a string, got {type(conversation_id).__name__}")
    if not conversation_id:
        raise InvalidConversationId("empty string")
    if len(conversation_id) > MAX_ID_LENGTH:
        raise InvalidConversationId(f"{len(conversation_id)} characters, more than {MAX_ID_LENGTH}")
    if conversation_id in (".", ".."):
        raise InvalidConversationId(f"{conversation_id!r} is a relative path segment")
    for ch in conversation_id:
        if ch in "/\\" or ch.isspace() or not ch.isprintable():
            shown = conversation_id[:40] + ("..." if len(conversation_id) > 40 else "")
            raise InvalidConversationId(f"{ch!r} in {shown!r}: no conversation id holds it")
    return conversation_id


def path_segment(value: str) -> str:
    """`value` percent-encoded as one path segment: `?`, `#`, `&`, `%`, `;` cannot escape it."""
    return quote(value, safe="")


def get_conversation(conversation_id: str) -> ApiCall[Conversation]:
    path = f"{LIST_PATH}/{path_segment(validate_conversation_id(conversation_id))}"
    return ApiCall("GET", path, (), Conversation, CONVERSATION_MAX_BODY)


def get_signed_url(agent_id: str, *, include_conversation_id: bool = False) -> ApiCall[SignedUrl]:
    if not agent_id or agent_id.strip() != agent_id:
        raise ValueError(f"not an agent id: {agent_id!r}")
    params: tuple[tuple[str, str], ...] = (("agent_id", agent_id),)
    if include_conversation_id:
        params += (("include_conversation_id", "true"),)
    return ApiCall("GET", SIGNED_URL_PATH, params, SignedUrl, SIGNED_URL_MAX_BODY)


def _detail(response: httpx.Response) -> Any:
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than Python recurses
        text = response.text.strip()
        return text[:500] or None
    return body.get("detail", body) if isinstance(body, dict) else body


def _request_id(response: httpx.Response, detail: Any) -> str | None:
    """The `request-id` header, else the typed body's `detail.request_id`, else `x-trace-id`."""
    header: str | None = response.headers.get(REQUEST_ID_HEADER)
    if header:
        return header
    if isinstance(detail, dict) and isinstance(detail.get("request_id"), str):
        return str(detail["request_id"]) or None
    trace: str | None = response.headers.get(TRACE_ID_HEADER)
    return trace or None


def _summarise(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"response body does not match the endpoint's model ({where}: {first['msg']})"


# Response headers worth keeping on an error; none of them can hold a secret.
_KEPT_HEADERS = (
    REQUEST_ID_HEADER,
    TRACE_ID_HEADER,
    "retry-after",
    "retry-after-ms",
    "current-concurrent-requests",
    "maximum-concurrent-requests",
    "content-type",
)


def _safe_headers(response: httpx.Response) -> dict[str, str]:
    return {k: response.headers[k] for k in _KEPT_HEADERS if k in response.headers}
