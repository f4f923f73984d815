"""The one exception tree of callsid-resolver.

```
CallSidResolverError
├── InvalidCallSid                 bad input, raised before any I/O (also a ValueError)
├── InvalidConversationId          not a conversation id (also a ValueError)
├── InvalidHint                    a resolve hint of the wrong type or range (also a ValueError)
├── InvalidApiKey                  a key that cannot be sent: control or non-ASCII characters
├── MissingApiKey                  no key given and ELEVENLABS_API_KEY unset
├── CacheUnavailable               the cache backend failed where the caller must know
├── ConversationNotFound           no conversation carries this call SID (says what was searched)
├── SenderError                    a send into a live call failed (see `live`; NotLive, ...)
├── WebhookError                   a webhook that must not be trusted (see `webhooks`)
│   ├── MissingSignature / MalformedSignature / StaleSignature / InvalidSignature
│   └── MalformedPayload
├── TransportError                 the request never got an HTTP answer (connect, read, protocol)
│   └── DeadlineExceeded           retries ran out of the total time budget
└── ApiError                       ElevenLabs answered with an error status
    ├── BadRequest                 400, 422 (`.detail` holds the validation items)
    ├── AuthenticationFailed       401
    ├── PermissionDenied           403
    ├── NotFound                   404
    ├── RateLimited                429 (`.retry_after`)
    ├── ServerError                5xx
    └── UnexpectedResponse         2xx whose body is not the JSON the endpoint promises
        └── ResponseTooLarge       a body over its endpoint's size cap
```

Every error message is built from its fields, and none of them ever holds the API key, a signed
URL's `conversation_signature` or a full phone number: URLs are reduced to their path before they
reach an exception (see `_core._redact`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._core._secrets import mask_phone_numbers

__all__ = [
    "ApiError",
    "AuthenticationFailed",
    "BadRequest",
    "CacheUnavailable",
    "CallSidResolverError",
    "ConversationNotFound",
    "DeadlineExceeded",
    "InvalidApiKey",
    "InvalidCallSid",
    "InvalidConversationId",
    "InvalidHint",
    "MissingApiKey",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "ResponseTooLarge",
    "SearchSummary",
    "ServerError",
    "TransportError",
    "UnexpectedResponse",
]


class CallSidResolverError(Exception):
    """Root of every exception this library raises on purpose."""


class InvalidCallSid(CallSidResolverError, ValueError):
    """The call SID given is not something a carrier could have issued."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid call SID: {reason}")


class InvalidConversationId(CallSidResolverError, ValueError):
    """A conversation id that cannot be one: empty, too long, `.`/`..`, a slash, whitespace."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid conversation id: {reason}")


class InvalidHint(CallSidResolverError, ValueError):
    """A `resolve` hint of the wrong type or out of range; `parameter` names it."""

    def __init__(self, parameter: str, reason: str) -> None:
        self.parameter = parameter
        self.reason = reason
        super().__init__(f"invalid {parameter}: {reason}")


class InvalidApiKey(CallSidResolverError, ValueError):
    """An API key that cannot be sent in a header. The message never shows the key."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid ElevenLabs API key: {reason}")


class CacheUnavailable(CallSidResolverError):
    """The cache backend failed (Redis down, out of memory, ...) where the caller must know, as
    when `remember` could not store a mapping. Lookups never raise it: they go on without cache.
    `operation` names what failed; the backend's own error is the `__cause__`."""

    def __init__(self, operation: str, error: BaseException) -> None:
        self.operation = operation
        super().__init__(f"cache unavailable: {operation} failed ({type(error).__name__})")


class MissingApiKey(CallSidResolverError):
    """No API key was given and the environment variable is not set."""

    def __init__(self, env_var: str) -> None:
        super().__init__(f"no ElevenLabs API key: pass api_key=... or set {env_var}")


class SearchSummary:
    """What a failed resolution looked at, so a user can tell a miss from a too-narrow search."""

    __slots__ = ("checked", "pages", "requests", "steps", "window")

    def __init__(
        self,
        *,
        steps: tuple[str, ...],
        pages: int,
        checked: int,
        requests: int,
        window: tuple[int | None, int | None],
    ) -> None:
        self.steps = steps
        self.pages = pages
        self.checked = checked
        self.requests = requests
        self.window = window

    def __repr__(self) -> str:
        return (
            f"SearchSummary(steps={self.steps!r}, pages={self.pages}, checked={self.checked}, "
            f"requests={self.requests}, window={self.window!r})"
        )


class ConversationNotFound(CallSidResolverError):
    """No conversation with this call SID was found within the search's bounds."""

    def __init__(
        self, call_sid: str, searched: SearchSummary | None, *, cached: bool = False
    ) -> None:
        self.call_sid = call_sid
        self.searched = searched
        self.cached = cached
        super().__init__(self._message())

    def _message(self) -> str:
        # A SIP call id may hold the caller's number (`+15551234567@10.0.0.1`).
        sid = mask_phone_numbers(self.call_sid)
        if self.cached:
            return f"no conversation for call SID {sid} (cached miss; not searched again)"
        s = self.searched
        if s is None:
            return f"no conversation for call SID {sid}"
        after, before = s.window
        window = f"start time in [{after or '-inf'}, {before or 'now'}]"
        return (
            f"no conversation for call SID {sid}: "
            f"tried {', '.join(s.steps) or 'nothing'}; {s.pages} list page(s), "
            f"{s.checked} conversation(s) checked, {s.requests} request(s), {window}"
        )


class TransportError(CallSidResolverError):
    """No HTTP answer: connection refused or dropped, a timeout, a protocol fault."""

    def __init__(self, message: str, *, method: str, path: str, attempts: int) -> None:
        self.method = method
        self.path = path
        self.attempts = attempts
        super().__init__(f"{message} ({method} {path}, {attempts} attempt(s))")


class DeadlineExceeded(TransportError):
    """Retrying would go past the total deadline of the call."""


class ApiError(CallSidResolverError):
    """ElevenLabs answered with an error status.

    `detail` is the API's own `detail` (a dict `{"status", "message"}`, a list of validation items
    for 422, or a string); `error_code` is `detail["status"]` when there is one; `request_id` is the
    `request-id` response header, which ElevenLabs support asks for.
    """

    def __init__(
        self,
        *,
        status_code: int,
        method: str,
        path: str,
        detail: Any = None,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status_code = status_code
        self.method = method
        self.path = path
        self.detail = detail
        self.request_id = request_id
        self.headers = dict(headers or {})
        super().__init__(self._message())

    @property
    def error_code(self) -> str | None:
        if isinstance(self.detail, dict):
            code = self.detail.get("status")
            return code if isinstance(code, str) else None
        return None

    @property
    def error_message(self) -> str | None:
        """The human text of `detail`, whatever shape the API used."""
        d = self.detail
        if isinstance(d, str):
            return d
        if isinstance(d, dict) and isinstance(d.get("message"), str):
            return str(d["message"])
        if isinstance(d, list):
            parts = []
            for item in d:
                if isinstance(item, dict):
                    loc = ".".join(str(p) for p in item.get("loc", ()))
                    parts.append(f"{loc}: {item.get('msg', '')}".strip(": "))
            return "; ".join(parts) or None
        return None

    def _message(self) -> str:
        text = f"{self.status_code} from {self.method} {self.path}"
        if self.error_code:
            text += f" [{self.error_code}]"
        if self.error_message:
            text += f": {self.error_message}"
        if self.request_id:
            text += f" (request-id {self.request_id})"
        return text


class BadRequest(ApiError):
    """400 or 422: the API refused the request's parameters."""


class AuthenticationFailed(ApiError):
    """401: the API key is missing, invalid or revoked."""


class PermissionDenied(ApiError):
    """403: the key lacks a scope or the workspace lacks access."""


class NotFound(ApiError):
    """404: no such conversation (or agent) for this key."""


class RateLimited(ApiError):
    """429 after every allowed retry; `retry_after` is the server's last wish in seconds."""

    def __init__(self, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(**kwargs)


class ServerError(ApiError):
    """5xx after every allowed retry."""


class UnexpectedResponse(ApiError):
    """A success status whose body is not the JSON this endpoint returns."""


class ResponseTooLarge(UnexpectedResponse):
    """A body larger than its endpoint's cap (`limit` bytes); reading stopped there."""

    def __init__(self, *, limit: int, **kwargs: Any) -> None:
        self.limit = limit
        super().__init__(**kwargs)


def error_class_for(status_code: int) -> type[ApiError]:
    if status_code in (400, 422):
        return BadRequest
    if status_code == 401:
        return AuthenticationFailed
    if status_code == 403:
        return PermissionDenied
    if status_code == 404:
        return NotFound
    if status_code == 429:
        return RateLimited
    if status_code >= 500:
        return ServerError
    return ApiError
