"""`Emulator`: the façade a test holds, over the state of a local ElevenLabs Agents API.

It is a fake of the server side and speaks the wire format with plain dicts: it never imports the
library's client or models, so it checks our client instead of agreeing with it. The state and
knobs are `EmulatorState` and `Settings`; the HTTP behaviour is `_http` (the list endpoint
`_listing`), the sockets' `_agent` and `_monitor`; the ways in are `transport()` (`_transport`)
and `app` (`_asgi`), which `EmulatorServer` serves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar, overload

from starlette.applications import Starlette

from .._json import Json
from ._asgi import create_app
from ._http import Reply, Request, handle
from ._profile import DOCUMENTED, EmulatorProfile, FilterMode, ProfileLike, load_profile
from ._recordings import load_recording
from ._requests import RequestLog
from ._session import Session
from ._settings import MonitorRefusal, Settings
from ._signing import check_signature, sign
from ._state import EmulatorState, Fault
from ._store import ConversationStore
from ._transport import EmulatorTransport
from ._view import shown

__all__ = [
    "Emulator",
]

T = TypeVar("T")


class _Knob(Generic[T]):
    """An `Emulator` attribute that is one of its `Settings` (so checked when set)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> _Knob[T]: ...
    @overload
    def __get__(self, instance: Emulator, owner: type) -> T: ...
    def __get__(self, instance: Emulator | None, owner: type) -> T | _Knob[T]:
        if instance is None:
            return self
        value: T = getattr(instance.state.settings, self.name)
        return value

    def __set__(self, instance: Emulator, value: T) -> None:
        setattr(instance.state.settings, self.name, value)


class _Held(Generic[T]):
    """An `Emulator` attribute that is one of its `EmulatorState`'s."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> _Held[T]: ...
    @overload
    def __get__(self, instance: Emulator, owner: type) -> T: ...
    def __get__(self, instance: Emulator | None, owner: type) -> T | _Held[T]:
        if instance is None:
            return self
        value: T = getattr(instance.state, self.name)
        return value

    def __set__(self, instance: Emulator, value: T) -> None:
        setattr(instance.state, self.name, value)


class Emulator:
    """A local ElevenLabs Agents API holding full GET-conversation objects.

    `api_key=None` accepts any non-empty `xi-api-key`; a missing one gets the API's 401.
    `profile` (`"documented"`, the default, `"observed"`, a profile file or an `EmulatorProfile`)
    chooses which reading of the real API it plays (see `EmulatorProfile`); `clock` is the time
    signed URLs expire and calls last on.
    Knobs, settable at any time and checked when set (a wrong value is a `ValueError` naming
    it): `profile`, `latency` (seconds per request), `filter_mode`
    (`"support"` the dynamic-variable filter, `"reject"` it with a 422, `"ignore"` it or
    answer it with `"empty"` lists; it is the profile's field), `rate_limit_every` (every
    Nth request is a 429 with `Retry-After: retry_after`), `concurrency_limit` (a request
    arriving while that many are being answered gets 429 `concurrent_limit_exceeded`),
    `fail_every`/`fail_status` (every Nth is a 5xx), `inject(...)` for scripted faults,
    `signed_url_ttl` and `clock` for signed URLs, and the WebSocket knobs `ping_interval`,
    `initiation_timeout`, `agent_reply`, `monitor_refusal`, `require_signed_url`.
    Its `state` (an `EmulatorState`) holds the data, counters and knobs the fronts answer from.
    """

    latency = _Knob[float]()
    rate_limit_every = _Knob[int | None]()
    concurrency_limit = _Knob[int | None]()
    retry_after = _Knob[str | None]()
    fail_every = _Knob[int | None]()
    fail_status = _Knob[int]()
    monitor_refusal = _Knob[MonitorRefusal | None]()
    ping_interval = _Knob[float]()
    agent_reply = _Knob[str]()
    signed_url_ttl = _Knob[float]()
    initiation_timeout = _Knob[float]()
    require_signed_url = _Knob[bool]()
    api_key = _Held[str | None]()
    clock = _Held[Callable[[], float]]()
    signing_key = _Held[bytes]()
    requests = _Held[RequestLog]()
    store = _Held[ConversationStore]()
    sessions = _Held[dict[str, Session]]()
    monitor_commands = _Held[dict[str, list[Json]]]()
    serving = _Held[int]()
    peak_serving = _Held[int]()

    def __init__(
        self,
        conversations: Iterable[Json] | None = None,
        *,
        recording: str | None = None,
        api_key: str | None = None,
        profile: ProfileLike = DOCUMENTED,
        clock: Callable[[], float] = time.time,
    ) -> None:
        settings = Settings(profile=load_profile(profile))
        self.state = EmulatorState(settings=settings, api_key=api_key, clock=clock)
        self._app: Starlette | None = None
        for conversation in load_recording(recording) if recording else ():
            self.add_conversation(conversation)
        for conversation in conversations or ():
            self.add_conversation(conversation)

    def __repr__(self) -> str:
        live = sum(c.get("status") in ("initiated", "in-progress") for c in self.conversations())
        key = "any key" if self.api_key is None else "one key"
        return (
            f"<Emulator {len(self.store)} conversation(s), {live} live, profile "
            f"{self.profile.name!r}, filter_mode={self.filter_mode!r}, {key}, "
            f"{self.total_requests} request(s) served>"
        )

    # -- profile ---------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        """Every knob, as one checked dataclass (the knobs are also attributes of the emulator)."""
        return self.state.settings

    @property
    def profile(self) -> EmulatorProfile:
        """The reading of the real API being played; set it to a name, a file or a profile."""
        return self.state.settings.profile

    @profile.setter
    def profile(self, value: ProfileLike) -> None:
        self.state.settings.profile = load_profile(value)

    @property
    def filter_mode(self) -> FilterMode:
        """The profile's `filter_mode`; setting it replaces that one field of the profile."""
        return self.state.settings.filter_mode

    @filter_mode.setter
    def filter_mode(self, value: FilterMode) -> None:
        self.state.settings.filter_mode = value

    # -- data ------------------------------------------------------------------------------
    def add_conversation(self, conversation: Json) -> None:
        """Add (or replace, by `conversation_id`) a full GET-conversation object."""
        self.state.add_conversation(conversation)

    def conversation(self, conversation_id: str) -> Json | None:
        """The stored conversation, every id included (change it in place at your own risk)."""
        return self.state.conversation(conversation_id)

    def shown(self, conversation_id: str) -> Json | None:
        """The conversation as a GET would answer it now under the profile (a copy when the
        profile changes it): e.g. the RFC 3261 Call-ID the observed profile gives a SIP call."""
        conversation = self.state.conversation(conversation_id)
        return None if conversation is None else shown(conversation, self.profile)

    def conversations(self) -> list[Json]:
        """Every conversation, newest first (start time, then id), as the list endpoint orders."""
        return self.store.ordered()[1]

    def new_call_ids(self) -> tuple[str, str]:
        """A fresh Twilio call SID (`CA` + 32 hex) and conversation id (`conv_` + 28)."""
        return self.state.new_call_ids()

    # -- ways in -----------------------------------------------------------------------------
    def transport(self) -> EmulatorTransport:
        """An httpx transport for both `httpx.Client` and `httpx.AsyncClient`, in-process."""
        return EmulatorTransport(self)

    @property
    def app(self) -> Starlette:
        """The ASGI (Starlette) application: HTTP and WebSockets, for `httpx.ASGITransport`
        (HTTP only) or a server (`EmulatorServer`)."""
        if self._app is None:
            self._app = create_app(self)
        return self._app

    def admission(self, path: str) -> AbstractContextManager[bool]:
        """Hold one of the workspace's `concurrency_limit` slots while an API request is being
        answered (its `latency` included); yields False when none was free: the request is then
        answered 429 `concurrent_limit_exceeded` (`Request.over_limit`). Control requests are
        never counted."""
        return self.state.admission(path)

    def handle(self, request: Request) -> Reply:
        """Answer one HTTP request; raises `Dropped` when a fault says to hang up."""
        return handle(self.state, request)

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
        self.state.add_faults(Fault(status, after, drop, malformed, endpoint, body, code), times)

    def take_fault(self, endpoint: str) -> Fault | None:
        """The next scripted fault for `endpoint`, removed from the queue, or None."""
        return self.state.take_fault(endpoint)

    def clear_faults(self) -> None:
        """Drop every fault scripted with `inject` that has not fired yet."""
        self.state.clear_faults()

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
        self.state.reset_counts()

    # -- signed URLs -----------------------------------------------------------------------
    def sign(self, agent_id: str) -> str:
        """A valid `conversation_signature` for `agent_id` (what the signed URL carries)."""
        return sign(self.state, agent_id)

    def check_signature(self, agent_id: str, token: str) -> str | None:
        """None when `token` is valid for `agent_id` now, else why not."""
        return check_signature(self.state, agent_id, token)

    # -- agent-socket conversations ----------------------------------------------------------
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
        self.state.end_session(conversation_id)
