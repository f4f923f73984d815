"""The emulator's HTTP behaviour, free of any web framework and of any I/O.

`handle(state, request)` answers one request with a `Reply`, or raises `Dropped` when a fault
says to hang up; the in-process transport and the ASGI app only translate. Behaviour copies
docs/protocol.md (paths, parameters, error bodies). Every unconfirmed choice of the emulator's
HTTP side is in this module's constants, marked as such.

Order of checks, as on a real deployment: route (unknown path 404 before auth, like FastAPI), then
scripted faults and rate limits (a proxy answers before the app), then the key, then the endpoint.
"""

from __future__ import annotations

import hmac
import json
from collections import Counter
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import quote

from .._json import Json
from ._listing import QueryError, list_page
from ._outbound import outbound
from ._settings import SettingError
from ._signing import sign
from ._state import CONTROL, EmulatorState, Fault
from ._view import shown

__all__ = [
    "CONCURRENT_LIMIT",
    "INVALID_KEY",
    "LIST",
    "MISSING_KEY",
    "NOT_FOUND",
    "OUTBOUND",
    "PUBLIC_WS_BASE",
    "RATE_LIMITED",
    "REQUEST_ID",
    "ROUTES",
    "SIGNED_URL",
    "SIP_OUTBOUND",
    "TRACE_ID",
    "Answering",
    "Dropped",
    "Reply",
    "Request",
    "endpoint_of",
    "handle",
]


LIST = "/v1/convai/conversations"
SIGNED_URL = "/v1/convai/conversation/get-signed-url"
OUTBOUND = "/v1/convai/twilio/outbound-call"
SIP_OUTBOUND = "/v1/convai/sip-trunk/outbound-call"
# Endpoint name, allowed method.
ROUTES = {"list": "GET", "get": "GET", "signed_url": "GET", "outbound_call": "POST",
          "sip_outbound_call": "POST"}  # fmt: skip

# Error bodies, (type, code, message) in the profile's shape (`error_body`): legacy
# `{"detail": {"status": code, "message"}}` or typed `{"detail": {"type", "code", "message",
# "request_id", "param"}}` (https://elevenlabs.io/docs/eleven-api/resources/errors).
# UNCONFIRMED: the `type` values; the errors page's table is not in our sources except
# `validation_error`.
INVALID_KEY = ("authentication_error", "invalid_api_key", "Invalid API key")
# Legacy: no body is documented for a request without any key, so it is answered like a wrong
# key. Typed: third-party captures show this code and message (docs/protocol.md §12).
MISSING_KEY = (
    "authentication_error",
    "needs_authorization",
    "Neither authorization header nor xi-api-key received, please provide one.",
)
# UNCONFIRMED (docs/protocol.md §10): the body for an unknown conversation id.
NOT_FOUND = ("not_found_error", "conversation_not_found", "Conversation not found")
RATE_LIMITED = {
    "legacy": ("rate_limit_error", "too_many_concurrent_requests", "Too many concurrent requests"),
    "typed": ("rate_limit_error", "rate_limit_exceeded", "Too many requests"),
}
CONCURRENT_LIMIT = "concurrent_limit_exceeded"
# The header carrying a request id: `request-id` (ElevenLabs' TTS replies in public issue
# threads; the documented profile), or `x-trace-id` equal to the body's `request_id` (third-party
# captures of error replies; the observed profile).
REQUEST_ID = "request-id"
TRACE_ID = "x-trace-id"
# Where a signed URL points when the emulator is used in-process (no host of its own).
PUBLIC_WS_BASE = "wss://api.elevenlabs.io"


class Answering(Protocol):
    """What an HTTP front hands requests to (the `Emulator` is one): its admission for the
    concurrency limit, its `latency`, and the answer itself."""

    @property
    def latency(self) -> float:
        """Seconds each API request takes."""
        ...

    def admission(self, path: str) -> AbstractContextManager[bool]:
        """A concurrency slot for the request at `path` (False: none was free)."""
        ...

    def handle(self, request: Request) -> Reply:
        """Answer one request; raises `Dropped` to hang up."""
        ...


class Dropped(Exception):
    """The emulator hangs up without answering (`inject(drop=True)`)."""


@dataclass
class Request:
    """One HTTP request as the I/O front received it."""

    method: str
    path: str
    params: list[tuple[str, str]]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    ws_base: str = PUBLIC_WS_BASE  # the scheme and host a signed URL should point at
    over_limit: bool = False  # arrived with `concurrency_limit` requests in flight already


@dataclass
class Reply:
    """The answer to send back, exactly: status, body bytes and headers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def endpoint_of(path: str) -> str:
    """The request log's name for the endpoint at `path` (`other` when there is none)."""
    if path == LIST:
        return "list"
    if path.startswith(LIST + "/") and path.count("/") == 4 and not path.endswith("/"):
        return "get"
    if path == SIGNED_URL:
        return "signed_url"
    if path == OUTBOUND:
        return "outbound_call"
    if path == SIP_OUTBOUND:
        return "sip_outbound_call"
    return "other"


def handle(state: EmulatorState, request: Request) -> Reply:
    """Answer one request; raises `Dropped` when a scripted fault says to hang up."""
    if request.path.startswith(CONTROL):
        return _control(state, request)
    endpoint = endpoint_of(request.path)
    record = state.requests.add(request.method, request.path, request.params, endpoint)
    profile = state.settings.profile
    headers = {REQUEST_ID if profile.request_id_header else TRACE_ID: record.request_id}
    reply = _answer(state, request, endpoint, _Errors(profile.error_body, record.request_id))
    reply.headers = headers | reply.headers
    record.status = reply.status
    return reply


@dataclass(frozen=True)
class _Errors:
    """Error replies in one profile's body shape, for one request."""

    shape: str  # "legacy" or "typed"
    request_id: str

    def reply(
        self,
        status: int,
        error: tuple[str, str, str],
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ) -> Reply:
        kind, code, message = error
        if self.shape == "legacy":
            return _json(status, {"detail": {"status": code, "message": message}}, headers)
        detail = {"type": kind, "code": code, "message": message,
                  "request_id": self.request_id, "param": param}  # fmt: skip
        return _json(status, {"detail": detail}, headers)

    def validation(self, items: list[Json]) -> Reply:
        """A 422: FastAPI's item list (legacy), or one typed `validation_error` naming the first
        bad parameter (typed; UNCONFIRMED which of the two the list endpoint sends now)."""
        if self.shape == "legacy":
            return _json(422, {"detail": items})
        first = items[0]
        param = str(first["loc"][-1]) if first.get("loc") else None
        error = ("validation_error", "invalid_parameters", str(first["msg"]))
        return self.reply(422, error, None, param)

    def rate_limited(self, code: str | None, retry_after: str | None) -> Reply:
        kind, default, message = RATE_LIMITED[self.shape]
        if code == CONCURRENT_LIMIT:
            message = "Too many concurrent requests"
        headers = {"retry-after": retry_after} if retry_after else {}
        return self.reply(429, (kind, code or default, message), headers)


def _answer(state: EmulatorState, request: Request, endpoint: str, errors: _Errors) -> Reply:
    if endpoint == "other":
        return _json(404, {"detail": "Not Found"})
    if request.method != ROUTES[endpoint]:
        return _json(405, {"detail": "Method Not Allowed"})
    fault = state.take_fault(endpoint)
    if fault is not None:
        return _faulty(fault, errors)
    if request.over_limit:
        # A workspace's concurrency limit (docs/protocol.md §10, §12). UNCONFIRMED: whether the
        # real 429 carries `Retry-After`; the docs advise backoff and name none, so none here.
        return errors.rate_limited(CONCURRENT_LIMIT, None)
    number = int(errors.request_id.rsplit("_", 1)[1])
    if state.settings.rate_limit_every and number % state.settings.rate_limit_every == 0:
        return errors.rate_limited(None, state.settings.retry_after)
    if state.settings.fail_every and number % state.settings.fail_every == 0:
        return _faulty(Fault(status=state.settings.fail_status), errors)
    key = request.headers.get("xi-api-key")
    if not key:
        return errors.reply(401, MISSING_KEY if errors.shape == "typed" else INVALID_KEY)
    if state.api_key is not None and not hmac.compare_digest(key, state.api_key):
        return errors.reply(401, INVALID_KEY)
    profile = state.settings.profile
    try:
        if endpoint == "list":
            return _json(200, list_page(state.store, request.params, profile))
        if endpoint == "get":
            conversation = state.store.get(request.path.rsplit("/", 1)[1])
            if conversation is None:
                return errors.reply(404, NOT_FOUND, param="conversation_id")
            return _json(200, shown(conversation, profile))
        if endpoint == "signed_url":
            return _json(200, _signed_url(state, dict(request.params), request.ws_base))
        return _json(200, outbound(state, request.body, sip=endpoint == "sip_outbound_call"))
    except QueryError as error:
        return errors.validation(error.items)


def _control(state: EmulatorState, request: Request) -> Reply:
    """`/_emulator/...`: counters and knobs for a test or benchmark in another process
    (`RemoteEmulator`). Not part of the API: never counted, no key needed."""
    action = (request.method, request.path[len(CONTROL) :])
    if action == ("GET", "counts"):
        statuses = Counter(str(r.status) for r in state.requests)
        extra = {"statuses": dict(statuses), "peak_in_flight": state.peak_serving}
        return _json(200, {"counts": state.requests.counts()} | extra)
    if action == ("POST", "reset"):
        state.reset_counts()
        return _json(200, {})
    if action == ("POST", "settings"):
        try:
            settings = json.loads(request.body or b"{}")
            if not isinstance(settings, dict):
                raise SettingError("settings", "expected a JSON object of settings")
            state.settings.apply(settings)
        except SettingError as error:
            return _json(422, {"detail": {"setting": error.name, "message": str(error)}})
        except ValueError as error:  # the body is not JSON
            return _json(422, {"detail": {"setting": None, "message": str(error)}})
        return _json(200, state.settings.current())
    return _json(404, {"detail": "Not Found"})


def _faulty(fault: Fault, errors: _Errors) -> Reply:
    if fault.drop:
        raise Dropped
    if fault.malformed:
        return Reply(200, b'{"conversations": [{"agent_id": ', {"content-type": "application/json"})
    status = fault.status or 500
    headers = {"retry-after": fault.retry_after} if fault.retry_after else {}
    if fault.body is not None:
        return _json(status, fault.body, headers)
    if status == 429:
        return errors.rate_limited(fault.code, fault.retry_after)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:  # a status no RFC names
        phrase = "Error"
    code = fault.code or "_".join(phrase.lower().split())
    # UNCONFIRMED: the `type` of a 5xx.
    kind = "internal_server_error" if status >= 500 else "invalid_request"
    return errors.reply(status, (kind, code, phrase), headers)


# -- signed URLs (checked again by the agent WebSocket) ---------------------------------------
def _signed_url(state: EmulatorState, params: dict[str, str], ws_base: str) -> Json:
    agent_id = params.get("agent_id")
    if not agent_id:
        raise QueryError(_missing("query", "agent_id"))
    token = sign(state, agent_id)
    url = f"{ws_base}/v1/convai/conversation?agent_id={quote(agent_id)}"
    return {"signed_url": f"{url}&conversation_signature={token}"}


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps(payload).encode()
    return Reply(status, body, {"content-type": "application/json", **(headers or {})})


def _missing(where: str, name: str) -> Json:
    return {"type": "missing", "loc": [where, name], "msg": "Field required", "input": None}
