"""The emulator's HTTP behaviour, free of any web framework and of any I/O.

`handle(emulator, request)` answers one request with a `Reply`, or raises `Dropped` when a fault
says to hang up; the in-process transport and the ASGI app only translate. Behaviour copies
`shared/api-facts.md` (paths, parameters, error bodies). Every unconfirmed choice of the emulator's
HTTP side is in this module's constants, marked as such.

Order of checks, as on a real deployment: route (unknown path 404 before auth, like FastAPI), then
scripted faults and rate limits (a proxy answers before the app), then the key, then the endpoint.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ._listing import QueryError, invalid, list_page

if TYPE_CHECKING:
    from ._emulator import Emulator

Json = dict[str, Any]

LIST = "/v1/convai/conversations"
SIGNED_URL = "/v1/convai/conversation/get-signed-url"
OUTBOUND = "/v1/convai/twilio/outbound-call"
CONTROL = "/_emulator/"
# Endpoint name, allowed method.
ROUTES = {"list": "GET", "get": "GET", "signed_url": "GET", "outbound_call": "POST"}

INVALID_KEY = {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}
# UNCONFIRMED: api-facts has no body for a request without any key; the API's own wording for it
# is not documented, so the emulator answers it like a wrong key (same status, same body).
MISSING_KEY = INVALID_KEY
# UNCONFIRMED (api-facts §10): the body for an unknown conversation id. This follows the API's
# `{"detail": {"status", "message"}}` convention for non-validation errors.
NOT_FOUND = {"detail": {"status": "conversation_not_found", "message": "Conversation not found"}}
RATE_LIMITED = {
    "detail": {"status": "too_many_concurrent_requests", "message": "Too many concurrent requests"}
}
# UNCONFIRMED: the response header carrying a request id. `request-id` is what ElevenLabs sends
# on its TTS responses in public issue threads; assumed the same for the convai endpoints.
REQUEST_ID = "request-id"
# Where a signed URL points when the emulator is used in-process (no host of its own).
PUBLIC_WS_BASE = "wss://api.elevenlabs.io"


class Dropped(Exception):
    """The emulator hangs up without answering (`inject(drop=True)`)."""


@dataclass
class Request:
    method: str
    path: str
    params: list[tuple[str, str]]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    ws_base: str = PUBLIC_WS_BASE  # the scheme and host a signed URL should point at


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Fault:
    """One scripted answer: an error status (with optional `Retry-After` and body), a hang-up
    or a 200 whose body is not JSON; only for `endpoint` when given."""

    status: int | None = None
    retry_after: str | None = None
    drop: bool = False
    malformed: bool = False
    endpoint: str | None = None
    body: Any = None


def endpoint_of(path: str) -> str:
    if path == LIST:
        return "list"
    if path.startswith(LIST + "/") and path.count("/") == 4 and not path.endswith("/"):
        return "get"
    if path == SIGNED_URL:
        return "signed_url"
    if path == OUTBOUND:
        return "outbound_call"
    return "other"


def handle(emulator: Emulator, request: Request) -> Reply:
    if request.path.startswith(CONTROL):
        return _control(emulator, request)
    endpoint = endpoint_of(request.path)
    record = emulator.requests.add(request.method, request.path, request.params, endpoint)
    headers = {REQUEST_ID: record.request_id}
    reply = _answer(emulator, request, endpoint, record.number)
    reply.headers = headers | reply.headers
    record.status = reply.status
    return reply


def _answer(emulator: Emulator, request: Request, endpoint: str, number: int) -> Reply:
    if endpoint == "other":
        return _json(404, {"detail": "Not Found"})
    if request.method != ROUTES[endpoint]:
        return _json(405, {"detail": "Method Not Allowed"})
    fault = emulator.take_fault(endpoint)
    if fault is not None:
        return _faulty(fault)
    if emulator.rate_limit_every and number % emulator.rate_limit_every == 0:
        retry = {"retry-after": emulator.retry_after} if emulator.retry_after else {}
        return _json(429, RATE_LIMITED, retry)
    if emulator.fail_every and number % emulator.fail_every == 0:
        return _faulty(Fault(status=emulator.fail_status))
    key = request.headers.get("xi-api-key")
    if not key:
        return _json(401, MISSING_KEY)
    if emulator.api_key is not None and not hmac.compare_digest(key, emulator.api_key):
        return _json(401, INVALID_KEY)
    try:
        if endpoint == "list":
            return _json(200, list_page(emulator.store, request.params, emulator.filter_mode))
        if endpoint == "get":
            conversation = emulator.store.get(request.path.rsplit("/", 1)[1])
            return _json(200, conversation) if conversation is not None else _json(404, NOT_FOUND)
        if endpoint == "signed_url":
            return _json(200, _signed_url(emulator, dict(request.params), request.ws_base))
        return _json(200, _outbound(emulator, request.body))
    except QueryError as error:
        return _json(422, {"detail": error.items})


def _control(emulator: Emulator, request: Request) -> Reply:
    """`/_emulator/...`: counters and knobs for a test or benchmark in another process
    (`RemoteEmulator`). Not part of the API: never counted, no key needed."""
    from ._emulator import SETTINGS

    action = (request.method, request.path[len(CONTROL) :])
    if action == ("GET", "counts"):
        return _json(200, {"counts": emulator.requests.counts()})
    if action == ("POST", "reset"):
        emulator.reset_counts()
        return _json(200, {})
    if action == ("POST", "settings"):
        settings = json.loads(request.body or b"{}")
        unknown = set(settings) - set(SETTINGS)
        if unknown:
            return _json(422, {"detail": f"unknown settings: {sorted(unknown)}"})
        for name, value in settings.items():
            setattr(emulator, name, value)
        return _json(200, {name: getattr(emulator, name) for name in SETTINGS})
    return _json(404, {"detail": "Not Found"})


def _faulty(fault: Fault) -> Reply:
    if fault.drop:
        raise Dropped
    if fault.malformed:
        return Reply(200, b'{"conversations": [{"agent_id": ', {"content-type": "application/json"})
    status = fault.status or 500
    body = fault.body
    if body is None:
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        name = "_".join(phrase.lower().split())
        body = RATE_LIMITED if status == 429 else {"detail": {"status": name, "message": phrase}}
    return _json(status, body, {"retry-after": fault.retry_after} if fault.retry_after else {})


# -- signed URLs (checked again by the agent WebSocket) ---------------------------------------
def _signed_url(emulator: Emulator, params: dict[str, str], ws_base: str) -> Json:
    agent_id = params.get("agent_id")
    if not agent_id:
        raise QueryError(_missing("query", "agent_id"))
    token = sign(emulator, agent_id)
    url = f"{ws_base}/v1/convai/conversation?agent_id={quote(agent_id)}"
    return {"signed_url": f"{url}&conversation_signature={token}"}


def sign(emulator: Emulator, agent_id: str) -> str:
    """A `conversation_signature`: claims (agent, expiry) and their HMAC under the emulator key."""
    claims = json.dumps({"agent_id": agent_id, "exp": emulator.clock() + emulator.signed_url_ttl})
    payload = base64.urlsafe_b64encode(claims.encode()).decode().rstrip("=")
    mac = hmac.new(emulator.signing_key, payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}.{mac}"


def check_signature(emulator: Emulator, agent_id: str, token: str) -> str | None:
    """None when `token` lets `agent_id` start a conversation now, else why not."""
    payload, _, mac = token.partition(".")
    good = hmac.new(emulator.signing_key, payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(good, mac):
        return "invalid signature"
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    if claims["agent_id"] != agent_id:
        return "signature is for another agent"
    return "signature expired" if claims["exp"] < emulator.clock() else None


# -- outbound calls ------------------------------------------------------------------------
def _outbound(emulator: Emulator, body: bytes) -> Json:
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        message = "JSON decode error"
        raise QueryError({"type": "json_invalid", "loc": ["body", 0], "msg": message}) from None
    if not isinstance(request, dict):
        raise QueryError(invalid("body", "model_attributes_type", "Input should be an object", 0))
    missing = [n for n in ("agent_id", "agent_phone_number_id", "to_number") if not request.get(n)]
    if missing:
        raise QueryError(*(_missing("body", name) for name in missing))
    call_sid, conversation_id = emulator.new_call_ids()
    emulator.add_conversation(new_call(request, call_sid, conversation_id, int(emulator.clock())))
    # `callSid` is camelCase on the wire (api-facts §6), unlike every other key.
    return {
        "success": True,
        "message": "Success",
        "conversation_id": conversation_id,
        "callSid": call_sid,
    }


def new_call(request: Json, call_sid: str, conversation_id: str, now: int) -> Json:
    """The conversation an outbound call creates: `initiated`, with its phone record and the
    system variables a real call carries (api-facts §7)."""
    client_data = copy.deepcopy(request.get("conversation_initiation_client_data") or {})
    variables = client_data.setdefault("dynamic_variables", {})
    agent_number = "+15550100100"
    variables |= {
        "system__call_sid": call_sid,
        "system__conversation_id": conversation_id,
        "system__agent_id": request["agent_id"],
        "system__caller_id": agent_number,
        "system__called_number": request["to_number"],
    }
    return {
        "agent_id": request["agent_id"],
        "conversation_id": conversation_id,
        "status": "initiated",
        "metadata": {
            "start_time_unix_secs": now,
            "call_duration_secs": 0,
            "conversation_initiation_source": "twilio",
            "phone_call": {
                "type": "twilio",
                "direction": "outbound",
                "phone_number_id": request["agent_phone_number_id"],
                "agent_number": agent_number,
                "external_number": request["to_number"],
                "stream_sid": "MZ" + call_sid[2:],
                "call_sid": call_sid,
            },
        },
        "conversation_initiation_client_data": client_data,
        "has_audio": False,
        "has_user_audio": False,
        "has_response_audio": False,
        "has_auxiliary_audio": False,
        "transcript": [],
    }


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps(payload).encode()
    return Reply(status, body, {"content-type": "application/json", **(headers or {})})


def _missing(where: str, name: str) -> Json:
    return {"type": "missing", "loc": [where, name], "msg": "Field required", "input": None}
