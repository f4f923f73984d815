"""`Emulator`: the state of a local ElevenLabs Agents API, its knobs and its counters.

It is a fake of the server side and speaks the wire format with plain dicts: it never imports the
library's client or models, so it checks our client instead of agreeing with it. The HTTP
behaviour is in `_http`, the list endpoint in `_listing`, the WebSockets in `_sockets`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

from . import _http
from ._profile import DOCUMENTED, EmulatorProfile, FilterMode, ProfileLike, load_profile
from ._recordings import load_recording
from ._settings import CHECKS
from ._store import ConversationStore
from ._view import shown

if TYPE_CHECKING:
    from ._sockets import Session
    from ._transport import EmulatorTransport

Json = dict[str, Any]
MonitorRefusal = Literal["plan", "scope", "role", "monitoring_disabled", "conversation_over"]
# Knobs a test in another process may set through `RemoteEmulator` (`/_emulator/settings`).
SETTINGS = tuple(CHECKS)


@dataclass
class RequestRecord:
    """One request as the emulator saw it; `status` is None for a dropped connection."""

    number: int
    method: str
    path: str
    params: list[tuple[str, str]]
    endpoint: str
    status: int | None = None

    @property
    def request_id(self) -> str:
        """The `request-id` the emulator answered this request with."""
        return f"emu_{self.number:08d}"

    def param(self, name: str) -> str | None:
        """The first value of a query parameter."""
        return next((v for k, v in self.params if k == name), None)

    def param_list(self, name: str) -> list[str]:
        """Every value of a repeated query parameter."""
        return [v for k, v in self.params if k == name]


@dataclass
class RequestLog(Sequence[RequestRecord]):
    """Every request that reached the emulator, including the ones answered 429/5xx or dropped.

    Endpoints: `list`, `get`, `signed_url`, `outbound_call`, `sip_outbound_call`, `agent_ws`,
    `monitor_ws`, `other`.
    """

    _records: list[RequestRecord] = field(default_factory=list)
    _counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def add(
        self, method: str, path: str, params: Sequence[tuple[str, str]], endpoint: str
    ) -> RequestRecord:
        """Record one request; its `RequestRecord` (the status is set once answered)."""
        with self._lock:
            record = RequestRecord(next(self._numbers), method, path, list(params), endpoint)
            self._records.append(record)
            self._counts[endpoint] += 1
        return record

    def count(self, endpoint: str) -> int:
        """Requests to `endpoint` since the last `reset()`."""
        return self._counts[endpoint]

    @property
    def total(self) -> int:
        """Requests to every endpoint since the last `reset()`."""
        return self._counts.total()

    def counts(self) -> dict[str, int]:
        """Requests per endpoint since the last `reset()`."""
        return dict(self._counts)

    def reset(self) -> None:
        """Forget the log and the counts (request numbers keep growing, so ids stay unique)."""
        with self._lock:
            self._records.clear()
            self._counts.clear()

    def of(self, endpoint: str) -> list[RequestRecord]:
        """The logged requests to `endpoint`, in order."""
        return [r for r in self._records if r.endpoint == endpoint]

    @overload
    def __getitem__(self, index: int) -> RequestRecord: ...
    @overload
    def __getitem__(self, index: slice) -> list[RequestRecord]: ...
    def __getitem__(self, index: int | slice) -> RequestRecord | list[RequestRecord]:
        return self._records[index]

    def __len__(self) -> int:
        return len(self._records)


class Emulator:
    """A local ElevenLabs Agents API holding full GET-conversation objects.

    `api_key=None` accepts any non-empty `xi-api-key`; a missing one gets the API's 401.
    `profile` (`"documented"`, the default, `"observed"`, a profile file or an `EmulatorProfile`)
    chooses which reading of the real API it plays (see `EmulatorProfile`).
    Knobs, settable at any time: `profile`, `latency` (seconds per request), `filter_mode`
    (`"support"` the dynamic-variable filter, `"reject"` it with a 422, `"ignore"` it or
    answer it with `"empty"` lists; it is the profile's field), `rate_limit_every` (every
    Nth request is a 429 with `Retry-After: retry_after`), `fail_every`/`fail_status` (every Nth is
    a 5xx), `inject(...)` for scripted faults, `signed_url_ttl` and `clock` for signed URLs, and
    the WebSocket knobs `ping_interval`, `agent_reply`, `monitor_refusal`, `require_signed_url`.
    """

    def __init__(
        self,
        conversations: Iterable[Json] | None = None,
        *,
        recording: str | None = None,
        api_key: str | None = None,
        profile: ProfileLike = DOCUMENTED,
    ) -> None:
        self.api_key = api_key
        self.profile = profile
        self.latency = 0.0
        self.rate_limit_every: int | None = None
        self.retry_after: str | None = "1"
        self.fail_every: int | None = None
        self.fail_status = 503
        self.signed_url_ttl = 15 * 60.0  # docs/protocol.md §5: 15 minutes to start the conversation
        self.clock: Callable[[], float] = time.time
        self.signing_key = secrets.token_bytes(32)
        self.requests = RequestLog()
        self.store = ConversationStore()
        self._faults: list[_http.Fault] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._app: Any = None
        # WebSockets (see `_sockets`).
        self.ping_interval = 1.0
        self.initiation_timeout = 1.0  # how long the agent socket waits for the client's data
        self.agent_reply = "Sure, let me check that for you."
        self.monitor_refusal: MonitorRefusal | None = None
        self.require_signed_url = False  # True: the agent is private, `agent_id` alone is refused
        self.sessions: dict[str, Session] = {}
        self.monitor_commands: dict[str, list[Json]] = {}
        for conversation in load_recording(recording) if recording else ():
            self.add_conversation(conversation)
        for conversation in conversations or ():
            self.add_conversation(conversation)

    # -- profile ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        live = sum(c.get("status") in ("initiated", "in-progress") for c in self.conversations())
        key = "any key" if self.api_key is None else "one key"
        return (
            f"<Emulator {len(self.store)} conversation(s), {live} live, profile "
            f"{self.profile.name!r}, filter_mode={self.filter_mode!r}, {key}, "
            f"{self.total_requests} request(s) served>"
        )

    @property
    def profile(self) -> EmulatorProfile:
        """The reading of the real API being played; set it to a name, a file or a profile."""
        return self._profile

    @profile.setter
    def profile(self, value: ProfileLike) -> None:
        self._profile = load_profile(value)

    @property
    def filter_mode(self) -> FilterMode:
        """The profile's `filter_mode`; setting it replaces that one field of the profile."""
        return self._profile.filter_mode

    @filter_mode.setter
    def filter_mode(self, value: FilterMode) -> None:
        self._profile = dataclasses.replace(self._profile, filter_mode=value)

    # -- data ------------------------------------------------------------------------------
    def add_conversation(self, conversation: Json) -> None:
        """Add (or replace, by `conversation_id`) a full GET-conversation object."""
        self.store.add(conversation)

    def conversation(self, conversation_id: str) -> Json | None:
        """The stored conversation, every id included (change it in place at your own risk)."""
        return self.store.get(conversation_id)

    def shown(self, conversation_id: str) -> Json | None:
        """The conversation as a GET would answer it now under the profile (a copy when the
        profile changes it): e.g. the RFC 3261 Call-ID the observed profile gives a SIP call."""
        conversation = self.store.get(conversation_id)
        return None if conversation is None else shown(conversation, self._profile)

    def conversations(self) -> list[Json]:
        """Every conversation, newest first (start time, then id), as the list endpoint orders."""
        return self.store.ordered()[1]

    def new_call_ids(self) -> tuple[str, str]:
        """A fresh Twilio call SID (`CA` + 32 hex) and conversation id (`conv_` + 28)."""
        n = next(self._ids)
        digest = hashlib.sha256(f"{n}-{id(self)}-{self.signing_key.hex()}".encode()).hexdigest()
        return "CA" + digest[:32], "conv_" + digest[32:60]

    # -- ways in -----------------------------------------------------------------------------
    def transport(self) -> EmulatorTransport:
        """An httpx transport for both `httpx.Client` and `httpx.AsyncClient`, in-process."""
        from ._transport import EmulatorTransport

        return EmulatorTransport(self)

    @property
    def app(self) -> Any:
        """The ASGI (Starlette) application: HTTP and WebSockets, for `httpx.ASGITransport`
        (HTTP only) or a server (`EmulatorServer`)."""
        if self._app is None:
            from ._asgi import create_app

            self._app = create_app(self)
        return self._app

    def handle(self, request: _http.Request) -> _http.Reply:
        """Answer one HTTP request; raises `Dropped` when a fault says to hang up."""
        return _http.handle(self, request)

    # -- faults and counters -----------------------------------------------------------------
    def inject(
        self,
        status: int | None = None,
        *,
        retry_after: str | int | None = None,
        drop: bool = False,
        malformed: bool = False,
        times: int = 1,
        endpoint: str | None = None,
        body: Any = None,
        code: str | None = None,
    ) -> None:
        """Script the next `times` requests (to `endpoint` only, when given): an error `status`
        (with `Retry-After` and `body` if given, else the profile's error body with `code`,
        e.g. `"concurrent_limit_exceeded"`), a dropped connection, or a 200 with bad JSON."""
        if status is None and not (drop or malformed):
            raise ValueError("inject needs a status, drop=True or malformed=True")
        after = None if retry_after is None else str(retry_after)
        fault = _http.Fault(status, after, drop, malformed, endpoint, body, code)
        with self._lock:
            self._faults += [fault] * times

    def take_fault(self, endpoint: str) -> _http.Fault | None:
        """The next scripted fault for `endpoint`, removed from the queue, or None."""
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.endpoint in (None, endpoint):
                    return self._faults.pop(i)
        return None

    def clear_faults(self) -> None:
        """Drop every fault scripted with `inject` that has not fired yet."""
        with self._lock:
            self._faults.clear()

    def count(self, endpoint: str) -> int:
        """Requests to one endpoint since the last `reset_counts()`."""
        return self.requests.count(endpoint)

    @property
    def total_requests(self) -> int:
        """Requests to every endpoint since the last `reset_counts()`."""
        return self.requests.total

    @property
    def counts(self) -> dict[str, int]:
        """Requests per endpoint since the last `reset_counts()`."""
        return self.requests.counts()

    def reset_counts(self) -> None:
        """Start counting requests from zero."""
        self.requests.reset()

    # -- signed URLs -----------------------------------------------------------------------
    def sign(self, agent_id: str) -> str:
        """A valid `conversation_signature` for `agent_id` (what the signed URL carries)."""
        return _http.sign(self, agent_id)

    def check_signature(self, agent_id: str, token: str) -> str | None:
        """None when `token` is valid for `agent_id` now, else why not."""
        return _http.check_signature(self, agent_id, token)

    # -- agent-socket conversations (the socket side is `_sockets`) --------------------------
    def session(self, conversation_id: str) -> Session:
        """The agent-socket session of a conversation (KeyError if none was opened)."""
        return self.sessions[conversation_id]

    def session_events(self, conversation_id: str) -> list[Json]:
        """Every client event the agent socket of this conversation received, in order."""
        return self.sessions[conversation_id].events

    async def call_client_tool(
        self, conversation_id: str, tool_name: str, parameters: Json | None = None
    ) -> str:
        """Make the agent call a client tool on the live socket; the `tool_call_id`.

        Callable from any event loop or thread's loop: the event is sent on the server's loop.
        """
        session = self.sessions[conversation_id]
        coroutine = session.call_client_tool(tool_name, parameters or {})
        if session.loop is None or session.loop is asyncio.get_running_loop():
            return await coroutine
        future = asyncio.run_coroutine_threadsafe(coroutine, session.loop)
        return await asyncio.wrap_future(future)

    def call_client_tool_sync(
        self,
        conversation_id: str,
        tool_name: str,
        parameters: Json | None = None,
        *,
        timeout: float = 5.0,
    ) -> str:
        """`call_client_tool` for synchronous tests (the session runs on `EmulatorServer`)."""
        session = self.sessions[conversation_id]
        if session.loop is None:
            raise RuntimeError("the session has no running socket")
        coroutine = session.call_client_tool(tool_name, parameters or {})
        return asyncio.run_coroutine_threadsafe(coroutine, session.loop).result(timeout)

    def tool_results(self, conversation_id: str, tool_call_id: str) -> list[Json]:
        """The `client_tool_result` events answering one client tool call."""
        return self.sessions[conversation_id].tool_results(tool_call_id)

    def end_session(self, conversation_id: str) -> None:
        """Mark a conversation over: status `done`, its duration measured on `clock`."""
        conversation = self.store.get(conversation_id)
        if conversation is None:
            return
        conversation["status"] = "done"
        if conversation_id in self.sessions:  # a recorded call keeps its recorded duration
            metadata = conversation["metadata"]
            started = int(metadata["start_time_unix_secs"])
            metadata["call_duration_secs"] = max(0, int(self.clock()) - started)
