"""The one exception tree of callsid-resolver, drawn once: every class below is importable
from `callsid_resolver` and from nowhere else public (tests/test_errors_doc.py checks this
drawing, and the one in docs/errors.md, against the classes).

```
CallSidResolverError
├── InvalidCallSid                 bad input, raised before any I/O (also a ValueError)
├── InvalidConversationId          not a conversation id (also a ValueError)
├── InvalidHint                    a resolve hint of the wrong type or range (also a ValueError)
├── InvalidApiKey                  a key that cannot be sent: control or non-ASCII characters
├── MissingApiKey                  no key given and ELEVENLABS_API_KEY unset
├── CacheUnavailable               the cache backend failed where the caller must know
├── ConversationNotFound           no conversation carries this call SID (`.searched`, `.live`)
├── TransportError                 the request never got an HTTP answer (connect, read, protocol)
│   └── DeadlineExceeded           retries ran out of the total time budget
├── ApiError                       ElevenLabs answered with an error status
│   ├── BadRequest                 400, 422 (`.detail` holds the validation items)
│   ├── AuthenticationFailed       401
│   ├── PermissionDenied           403
│   ├── NotFound                   404
│   ├── RateLimited                429 (`.retry_after`, `.reason`: rate or concurrency)
│   ├── ServerError                5xx
│   └── UnexpectedResponse         2xx whose body is not the JSON the endpoint promises
│       └── ResponseTooLarge       a body over its endpoint's size cap
├── WebhookError                   a webhook that must not be trusted (`webhooks`)
│   ├── MissingSignature           no `ElevenLabs-Signature` header
│   ├── MalformedSignature         not `t=<unix>,v0=<64 hex>` (`.reason`)
│   ├── StaleSignature             authentic, but `t` too old or too far ahead (`.age`)
│   ├── InvalidSignature           no `v0` matches: wrong secret or altered body
│   ├── MalformedPayload           authentic, but not a webhook envelope (`.errors`)
│   └── WebhookArgumentError       an empty secret, a NaN tolerance (also a ValueError)
└── SenderError                    a send into a live call failed (`live`)
    ├── SessionError               our own Agents WebSocket
    │   ├── SessionOpenFailed      handshake refused, unreachable, or no conversation id in time
    │   └── SessionClosed          closed, or dropped before the send was confirmed (`.sent`)
    ├── MonitorError               the monitoring WebSocket (`/conversations/{id}/monitor`)
    │   ├── MonitorUnavailable     could not connect, or the socket dropped (not a refusal)
    │   └── MonitorRefused         the API said no (`.refusal`, `.status_code`, `.close_code`)
    │       ├── MonitorPlanRequired     neither Enterprise nor the `realtime-monitoring` flag
    │       ├── MonitorScopeMissing     the key lacks the `CONVAI_WRITE` scope
    │       ├── MonitorRoleMissing      the key's user lacks EDITOR access to the workspace
    │       ├── MonitoringDisabled      the agent has `monitoring_enabled` off
    │       ├── ConversationNotStarted  the conversation has not begun (`initiated`)
    │       └── ConversationOver        over (`done`, `failed`, `processing`) or never was
    ├── InvalidSend                unusable send arguments (also a ValueError); nothing was sent
    │   └── CallMismatch           the call SID and the conversation id name different calls
    ├── MailboxFull                the call's mailbox holds `max_items` already; nothing dropped
    ├── MailboxUnavailable         the mailbox's store (Redis) failed; nothing posted or taken
    ├── SendTimeout                no room in the conversation's send queue within the timeout
    ├── ConfirmTimeout             written, but not confirmed within the send timeout (`.sent`)
    ├── NoRoute                    no worker of the fleet can take it (`RedisRouter`)
    ├── RouteTimeout               the worker holding the session did not acknowledge in time
    └── NotLive                    no channel could take the message (`.reasons` per channel)
```

The classes live next to the code that raises them: this module holds the root and the
resolver's and client's errors, `live._errors` the sender's (`NoRoute` is `live._router`'s),
`_webhook_signature` the webhooks'.

Every error message is built from its fields, and none of them ever holds the API key, a signed
URL's `conversation_signature` or a full phone number: URLs are reduced to their path before they
reach an exception, text a server echoed has the caller's secrets scrubbed, and phone numbers in
call ids are masked (see `_core._secrets`). A `TransportError` chains a copy of the httpx error
without its request, whose headers hold the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ._not_found import SearchSummary, not_found_message

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
    "error_class_for",
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


class ConversationNotFound(CallSidResolverError):
    """No conversation with this call SID was found within the search's bounds.

    `live` is True when the caller said the call is going on (`in_progress=True`), or when live
    conversations hid their call ids from the search: the message then says how to learn the
    mapping without ElevenLabs showing it.
    """

    def __init__(
        self,
        call_sid: str,
        searched: SearchSummary | None,
        *,
        cached: bool = False,
        live: bool = False,
    ) -> None:
        self.call_sid = call_sid
        self.searched = searched
        self.cached = cached
        self.live = live or (searched is not None and searched.hidden_live > 0)
        super().__init__(not_found_message(call_sid, searched, cached=cached, live=self.live))


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

    `detail` is the API's own `detail`: a typed object `{"type", "code", "message", "request_id",
    "param"}`, the legacy `{"status", "message"}`, a list of validation items for 422, or a
    string (https://elevenlabs.io/docs/eleven-api/resources/errors). `error_code` is its `code`,
    else the legacy `status`; `request_id`, which ElevenLabs support asks for, is the
    `request-id` header, else the body's `request_id`, else the `x-trace-id` header.
    `attempts` is how many HTTP requests the call sent, retries included.
    """

    attempts: int = 1

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
        """`detail.code`, else the legacy `detail.status` (docs/protocol.md §10, §12)."""
        if isinstance(self.detail, dict):
            for name in ("code", "status"):
                code = self.detail.get(name)
                if isinstance(code, str) and code:
                    return code
        return None

    @property
    def param(self) -> str | None:
        """`detail.param` of a typed error body: the parameter the API refused."""
        if isinstance(self.detail, dict) and isinstance(self.detail.get("param"), str):
            return str(self.detail["param"])
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
        if self.param:
            text += f" (param {self.param})"
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text


class BadRequest(ApiError):
    """400 or 422: the API refused the request's parameters."""


class AuthenticationFailed(ApiError):
    """401: the API key is missing, invalid or revoked."""


class PermissionDenied(ApiError):
    """403: the key lacks a scope or the workspace lacks access."""


class NotFound(ApiError):
    """404: no such conversation (or agent) for this key."""


RateLimitReason = Literal["rate", "concurrency"]
# The 429 codes (https://elevenlabs.io/docs/eleven-api/resources/errors), and the legacy
# `status` seen in older bodies (docs/protocol.md §10).
_RATE_LIMIT_CODES: dict[str, RateLimitReason] = {
    "rate_limit_exceeded": "rate",
    "concurrent_limit_exceeded": "concurrency",
    "too_many_concurrent_requests": "concurrency",
}


class RateLimited(ApiError):
    """429 after every allowed retry; `retry_after` is the server's last wish in seconds.

    `reason` tells the two limits apart: `"rate"` (too many requests in a short time: back off
    exponentially) or `"concurrency"` (too many at once: wait for your own requests to finish,
    e.g. lower `concurrency`); None for a code this library does not know.
    """

    def __init__(self, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(**kwargs)

    @property
    def reason(self) -> RateLimitReason | None:
        """Why the API refused: `"concurrency"` (too many requests at once) or `"rate"` (too many
        in a short time), from the error code; None when it does not say.
        """
        return _RATE_LIMIT_CODES.get(self.error_code or "")


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
    """The `ApiError` subclass an error status maps to (the client and the recorder raise it)."""
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
