"""The emulator's state and its HTTP behaviour, free of any web framework.

It is a fake of the server side and speaks the wire format with plain dicts: it never imports the
library's models, so it checks our client instead of agreeing with it. Behaviour copies the API
facts in `shared/api-facts.md` (paths, parameters, error bodies); where a fact is unconfirmed
(the 404 body, the request-id header name) the choice is marked here.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from ._recordings import load_recording

if TYPE_CHECKING:
    from ._sockets import Session
    from ._transport import EmulatorTransport

Json = dict[str, Any]
FilterMode = Literal["support", "reject", "ignore"]

LIST = "/v1/convai/conversations"
SIGNED_URL = "/v1/convai/conversation/get-signed-url"
OUTBOUND = "/v1/convai/twilio/outbound-call"
CONTROL = "/_emulator/"
SETTINGS = ("latency", "filter_mode", "rate_limit_every", "retry_after", "monitor_refusal",
            "ping_interval", "agent_reply")  # fmt: skip
INVALID_KEY = {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}
# The real body for an unknown conversation id is unconfirmed (api-facts §10); this follows the
# API's `{"detail": {"status", "message"}}` convention.
NOT_FOUND = {"detail": {"status": "conversation_not_found", "message": "Conversation not found"}}
# The response header carrying the request id: `request-id` is what ElevenLabs sends on TTS
# responses (seen in public issue threads); assumed the same for the convai endpoints.
REQUEST_ID = "request-id"


class Dropped(Exception):
    """The emulator hangs up without answering (a knob: `inject(drop=True)`)."""


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass
class Fault:
    status: int | None = None
    retry_after: str | None = None
    drop: bool = False
    malformed: bool = False
    endpoint: str | None = None


def endpoint_of(method: str, path: str) -> str:
    if path == LIST:
        return "list"
    if path.startswith(LIST + "/") and path.count("/") == 4:
        return "get"
    if path == SIGNED_URL:
        return "signed_url"
    if path == OUTBOUND and method == "POST":
        return "outbound_call"
    return "other"


class Emulator:
    """A local ElevenLabs Agents API holding conversations (full GET-conversation objects).

    `api_key=None` accepts any non-empty `xi-api-key`; a missing key gets the API's 401. Knobs a
    test may set at any time: `latency` (seconds per request), `filter_mode` ("support", "reject"
    with a 422, or "ignore" the dynamic-variable filter), `rate_limit_every` (every Nth request
    answers 429 with `Retry-After: retry_after`), and `inject(...)` for scripted faults.
    """

    def __init__(
        self,
        conversations: Iterable[Json] | None = None,
        *,
        recording: str | None = None,
        api_key: str | None = None,
    ) -> None:
        self.api_key = api_key
        self.latency = 0.0
        self.filter_mode: FilterMode = "support"
        self.rate_limit_every: int | None = None
        self.retry_after = "1"
        self.signed_url_ttl = 15 * 60.0
        self.clock: Callable[[], float] = time.time
        self.counts: Counter[str] = Counter()
        self.log: list[tuple[str, str, list[tuple[str, str]]]] = []
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._by_id: dict[str, Json] = {}
        self._sorted: list[Json] | None = None
        self._by_call_sid: dict[str, Json] = {}
        self._ids = itertools.count(1)
        self._signing_key = secrets.token_bytes(32)
        self._app: Any = None
        # WebSocket knobs and records (see `_sockets`).
        self.ping_interval = 1.0
        self.agent_reply = "Sure, let me check that for you."
        self.monitor_refusal: str | None = None
        self.sessions: dict[str, Session] = {}
        self.monitor_commands: dict[str, list[Json]] = {}
        for conv in load_recording(recording) if recording else ():
            self.add_conversation(conv)
        for conv in conversations or ():
            self.add_conversation(conv)

    # -- data ------------------------------------------------------------------------------
    def add_conversation(self, conversation: Json) -> None:
        with self._lock:
            self._by_id[conversation["conversation_id"]] = conversation
            self._sorted = None
            data = conversation.get("conversation_initiation_client_data") or {}
            sid = (data.get("dynamic_variables") or {}).get("system__call_sid")
            if sid is not None:
                self._by_call_sid[str(sid)] = conversation

    def conversation(self, conversation_id: str) -> Json | None:
        return self._by_id.get(conversation_id)

    def conversations(self) -> list[Json]:
        """Every conversation, newest first (by start time, then id)."""
        with self._lock:
            if self._sorted is None:
                self._sorted = sorted(
                    self._by_id.values(),
                    key=lambda c: (
                        -int(c["metadata"]["start_time_unix_secs"]),
                        c["conversation_id"],
                    ),
                )
            return self._sorted

    # -- agent-socket conversations -------------------------------------------------------------
    def start_session(self, agent_id: str, first_message: Json) -> str:
        """Create the conversation an agent-socket connection starts; its id."""
        from ._sockets import Session

        n = next(self._ids)
        conversation_id = "conv_" + hashlib.sha256(f"ws-{n}-{id(self)}".encode()).hexdigest()[:28]
        variables = dict(first_message.get("dynamic_variables") or {})
        variables |= {"system__conversation_id": conversation_id, "system__agent_id": agent_id}
        self.add_conversation(
            {
                "agent_id": agent_id,
                "conversation_id": conversation_id,
                "status": "in-progress",
                "metadata": {
                    "start_time_unix_secs": int(self.clock()),
                    "call_duration_secs": 0,
                    "conversation_initiation_source": "python_sdk",
                },
                "conversation_initiation_client_data": {"dynamic_variables": variables},
                "has_audio": False,
                "has_user_audio": False,
                "has_response_audio": False,
                "has_auxiliary_audio": False,
                "transcript": [],
            }
        )
        session = self.sessions[conversation_id] = Session(conversation_id)
        session.record(first_message)
        return conversation_id

    def end_session(self, conversation_id: str) -> None:
        conv = self._by_id.get(conversation_id)
        if conv is not None:
            conv["status"] = "done"

    def session_events(self, conversation_id: str) -> list[Json]:
        """Every client event the agent socket of this conversation received, in order."""
        return self.sessions[conversation_id].events

    # -- ways in -----------------------------------------------------------------------------
    def transport(self) -> EmulatorTransport:
        """An httpx transport for both `httpx.Client` and `httpx.AsyncClient`, in-process."""
        from ._transport import EmulatorTransport

        return EmulatorTransport(self)

    @property
    def app(self) -> Any:
        """The ASGI application (HTTP and WebSockets), for `httpx.ASGITransport` or a server."""
        if self._app is None:
            from ._asgi import create_app

            self._app = create_app(self)
        return self._app

    # -- knobs and counters ----------------------------------------------------------------
    def inject(
        self,
        status: int | None = None,
        *,
        retry_after: str | None = None,
        drop: bool = False,
        malformed: bool = False,
        times: int = 1,
        endpoint: str | None = None,
    ) -> None:
        """Script the next `times` matching requests: an error status, a hang-up or bad JSON."""
        with self._lock:
            self._faults += [Fault(status, retry_after, drop, malformed, endpoint)] * times

    def count(self, endpoint: str) -> int:
        return self.counts[endpoint]

    @property
    def total_requests(self) -> int:
        return self.counts.total()

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.log.clear()

    # -- HTTP --------------------------------------------------------------------------------
    def handle(
        self,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
        ws_base: str = "wss://api.elevenlabs.io",
    ) -> Reply:
        """Answer one request; raises `Dropped` when a fault says to hang up."""
        if path.startswith(CONTROL):
            return self._control(method, path, body)
        endpoint = endpoint_of(method, path)
        with self._lock:
            self.counts[endpoint] += 1
            self.log.append((method, path, list(params)))
            number = self.counts.total()
            fault = self._take_fault(endpoint)
        rid = {REQUEST_ID: f"emu_{number:08d}"}
        if fault is not None:
            if fault.drop:
                raise Dropped(path)
            if fault.malformed:
                return Reply(
                    200, b'{"conversations": [', rid | {"content-type": "application/json"}
                )
            extra = {"retry-after": fault.retry_after} if fault.retry_after else {}
            return _json(fault.status or 500, {"detail": "injected fault"}, rid | extra)
        if self.rate_limit_every and number % self.rate_limit_every == 0:
            body_429 = {"detail": {"status": "too_many_concurrent_requests", "message": "Busy"}}
            return _json(429, body_429, rid | {"retry-after": self.retry_after})
        key = headers.get("xi-api-key")
        if not key or (self.api_key is not None and key != self.api_key):
            return _json(401, INVALID_KEY, rid)
        status, payload = self._route(method, path, endpoint, params, body, ws_base)
        return _json(status, payload, rid)

    def _control(self, method: str, path: str, body: bytes) -> Reply:
        """`/_emulator/...`: counters and knobs for a test or benchmark in another process
        (`RemoteEmulator`). Not part of the API: never counted, no key needed."""
        action = path[len(CONTROL) :]
        if action == "counts" and method == "GET":
            return _json(200, {"counts": dict(self.counts)}, {})
        if action == "reset" and method == "POST":
            self.reset_counts()
            return _json(200, {}, {})
        if action == "settings" and method == "POST":
            settings = json.loads(body or b"{}")
            unknown = set(settings) - set(SETTINGS)
            if unknown:
                return _json(422, {"detail": f"unknown settings: {sorted(unknown)}"}, {})
            for name, value in settings.items():
                setattr(self, name, value)
            return _json(200, {name: getattr(self, name) for name in SETTINGS}, {})
        return _json(404, {"detail": "Not Found"}, {})

    def _take_fault(self, endpoint: str) -> Fault | None:
        for i, fault in enumerate(self._faults):
            if fault.endpoint in (None, endpoint):
                return self._faults.pop(i)
        return None

    def _route(
        self,
        method: str,
        path: str,
        endpoint: str,
        params: Sequence[tuple[str, str]],
        body: bytes,
        ws_base: str,
    ) -> tuple[int, Any]:
        if endpoint == "list" and method == "GET":
            return self._list(params)
        if endpoint == "get" and method == "GET":
            conv = self._by_id.get(path.rsplit("/", 1)[1])
            return (200, conv) if conv is not None else (404, NOT_FOUND)
        if endpoint == "signed_url" and method == "GET":
            return self._signed_url(dict(params), ws_base)
        if endpoint == "outbound_call":
            return self._outbound(body)
        return 404, {"detail": "Not Found"}

    def _list(self, params: Sequence[tuple[str, str]]) -> tuple[int, Any]:
        from ._listing import list_page

        return list_page(self.conversations(), params, self.filter_mode, self._by_call_sid)

    # -- signed URLs (checked by the agent WebSocket) -----------------------------------------
    def _signed_url(self, params: dict[str, str], ws_base: str) -> tuple[int, Any]:
        agent_id = params.get("agent_id")
        if not agent_id:
            return 422, _missing("agent_id")
        token = self.sign(agent_id)
        url = f"{ws_base}/v1/convai/conversation?agent_id={quote(agent_id)}"
        return 200, {"signed_url": f"{url}&conversation_signature={token}"}

    def sign(self, agent_id: str) -> str:
        claims = json.dumps({"agent_id": agent_id, "exp": self.clock() + self.signed_url_ttl})
        payload = base64.urlsafe_b64encode(claims.encode()).decode().rstrip("=")
        mac = hmac.new(self._signing_key, payload.encode(), hashlib.sha256).hexdigest()
        return f"{payload}.{mac}"

    def check_signature(self, agent_id: str, token: str) -> str | None:
        """None when `token` is valid for `agent_id` now, else why not."""
        payload, _, mac = token.partition(".")
        good = hmac.new(self._signing_key, payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(good, mac):
            return "invalid signature"
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if claims["agent_id"] != agent_id:
            return "signature is for another agent"
        return "signature expired" if claims["exp"] < self.clock() else None

    # -- outbound calls ---------------------------------------------------------------------
    def _outbound(self, body: bytes) -> tuple[int, Any]:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return 422, _missing("body")
        for name in ("agent_id", "agent_phone_number_id", "to_number"):
            if not request.get(name):
                return 422, _missing(name)
        n = next(self._ids)
        call_sid = "CA" + hashlib.sha256(f"outbound-{n}-{id(self)}".encode()).hexdigest()[:32]
        conversation_id = "conv_" + hashlib.sha256(call_sid.encode()).hexdigest()[:28]
        self.add_conversation(new_call(request, call_sid, conversation_id, int(self.clock())))
        return 200, {
            "success": True,
            "message": "Success",
            "conversation_id": conversation_id,
            "callSid": call_sid,
        }


def new_call(request: Json, call_sid: str, conversation_id: str, now: int) -> Json:
    """The conversation an outbound call creates: initiated, with its phone record."""
    client_data = copy.deepcopy(request.get("conversation_initiation_client_data") or {})
    variables = client_data.setdefault("dynamic_variables", {})
    variables |= {
        "system__call_sid": call_sid,
        "system__conversation_id": conversation_id,
        "system__agent_id": request["agent_id"],
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
                "agent_number": "+15550100100",
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


def _json(status: int, payload: Any, headers: dict[str, str]) -> Reply:
    return Reply(
        status, json.dumps(payload).encode(), headers | {"content-type": "application/json"}
    )


def _missing(name: str) -> Json:
    return {"detail": [{"type": "missing", "loc": ["query", name], "msg": "Field required"}]}
