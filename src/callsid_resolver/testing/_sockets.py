"""The emulator's WebSockets: the agent socket and the monitoring socket (api-facts §8, §11).

Agent socket `/v1/convai/conversation`: a public agent by `agent_id`, a private one by signed URL
(`conversation_signature`, refused once expired or altered; `require_signed_url` makes every agent
private). Each connection starts a conversation, stored `in-progress` with the dynamic variables of
the client's `conversation_initiation_client_data` (optional: when the first message is something
else, or nothing comes within `initiation_timeout`, the conversation starts without them). The
server answers `conversation_initiation_metadata`, pings every `ping_interval` seconds expecting a
`pong` with the same `event_id` (`Session.missed_pongs`), answers `user_message` with an
`agent_response` of `agent_reply`, and sends `client_tool_call` when a test asks
(`Emulator.call_client_tool`). Every client event is recorded (`Emulator.session_events`); closing
the socket ends the conversation (status `done`).

Monitor socket `/v1/convai/conversations/{id}/monitor`: `xi-api-key` header required; replays the
conversation's recent events (≈ the last 100, no pings), forwards new ones, and records commands
(`Emulator.monitor_commands[id]`); `end_call` ends the conversation and both sockets.

ASSUMPTIONS about refusals (the real behaviour is unconfirmed, api-facts open question 5), all
here: a handshake without a valid key is refused with HTTP 403 (so is a bad signed URL on the agent
socket). A monitor refusal for plan, key scope, monitoring disabled or conversation over
(`monitor_refusal`; an unknown or finished conversation is always `conversation_over`) accepts the
handshake and closes at once with code 1008 (policy violation, the API's code for auth and
contract errors, api-facts §8) and reason `"<refusal>: <text>"`, so a client can tell them apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

if TYPE_CHECKING:
    from ._emulator import Emulator, RequestRecord

Json = dict[str, Any]
POLICY_VIOLATION = 1008
MONITOR_REASONS = {
    "plan": "real-time monitoring requires an enterprise plan",
    "scope": "the API key lacks the ElevenLabs Agents Write scope",
    "monitoring_disabled": "monitoring is not enabled for this agent",
    "conversation_over": "the conversation is not active",
}
LIVE = ("initiated", "in-progress")
REPLAYED = 100


class Session:
    """One agent-socket conversation as the emulator sees it."""

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        self.events: list[Json] = []  # client -> server, in order
        self.sent: list[Json] = []  # server -> client, in order
        self.pings: list[int] = []
        self.pongs: list[int] = []
        self.event_ids = itertools.count(1)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.monitors: list[Callable[[Json], Awaitable[None]]] = []
        self._socket: WebSocket | None = None
        self._lock = asyncio.Lock()

    @property
    def live(self) -> bool:
        return self._socket is not None

    @property
    def missed_pongs(self) -> list[int]:
        """Pings never answered (the newest one may still be on its way back, so not counted)."""
        answered = set(self.pongs)
        return [p for p in self.pings[:-1] if p not in answered]

    def record(self, message: Json) -> None:
        self.events.append(message)
        if message.get("type") == "pong":
            self.pongs.append(int(message.get("event_id", -1)))

    async def send(self, event: Json) -> None:
        if self._socket is None:
            raise RuntimeError(f"the session {self.conversation_id} is closed")
        async with self._lock:
            self.sent.append(event)
            await self._socket.send_text(json.dumps(event))
        if event["type"] != "ping":
            for forward in list(self.monitors):
                with contextlib.suppress(Exception):  # a monitor that left is not our problem
                    await forward(event)

    async def call_client_tool(self, tool_name: str, parameters: Json) -> str:
        event_id = next(self.event_ids)
        tool_call_id = f"toolu_emu{self.conversation_id[-8:]}{event_id:04d}"
        body = {"tool_name": tool_name, "tool_call_id": tool_call_id, "parameters": parameters}
        await self.send(
            {"type": "client_tool_call", "client_tool_call": body | {"event_id": event_id}}
        )
        return tool_call_id

    def tool_results(self, tool_call_id: str) -> list[Json]:
        return [
            e
            for e in self.events
            if e.get("type") == "client_tool_result" and e.get("tool_call_id") == tool_call_id
        ]

    async def wait_for_tool_result(self, tool_call_id: str, timeout: float = 5.0) -> Json:
        """The client's result for a tool call, once it arrives (polls: works from any loop)."""

        async def poll() -> Json:
            # Polling, not an Event: the caller's loop may not be the session's loop.
            while not (found := self.tool_results(tool_call_id)):  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            return found[0]

        return await asyncio.wait_for(poll(), timeout)

    async def close(self, code: int, reason: str) -> None:
        if self._socket is not None and self._socket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self._socket.close(code, reason)


def _emulator(websocket: WebSocket) -> Emulator:
    emulator: Emulator = websocket.app.state.emulator
    return emulator


def _count(emulator: Emulator, websocket: WebSocket, endpoint: str) -> RequestRecord:
    params = list(websocket.query_params.multi_items())
    return emulator.requests.add("GET", websocket.url.path, params, endpoint)


async def agent_socket(websocket: WebSocket) -> None:
    emulator = _emulator(websocket)
    record = _count(emulator, websocket, "agent_ws")
    agent_id = websocket.query_params.get("agent_id", "")
    signature = websocket.query_params.get("conversation_signature")
    refused = not agent_id or (signature is None and emulator.require_signed_url)
    if signature is not None and agent_id:
        refused = emulator.check_signature(agent_id, signature) is not None
    if refused:
        record.status = 403
        await websocket.close(POLICY_VIOLATION)  # before accept: HTTP 403 on the handshake
        return
    record.status = 101
    await websocket.accept()
    gone, first = await _first_message(websocket, emulator.initiation_timeout)
    if gone:
        return
    initiation: Json = {}
    if first is not None and first.get("type") == "conversation_initiation_client_data":
        initiation = first
    source = websocket.query_params.get("source", "unknown")
    how = "public" if signature is None else "signed_url"
    session = start_session(emulator, agent_id, initiation, source, how)
    session.loop = asyncio.get_running_loop()
    session._socket = websocket
    if first is not None:
        session.record(first)
    meta = {
        "conversation_id": session.conversation_id,
        "agent_output_audio_format": "pcm_16000",
        "user_input_audio_format": "pcm_16000",
    }
    await session.send(
        {"type": "conversation_initiation_metadata", "conversation_initiation_metadata_event": meta}
    )
    pinger = asyncio.ensure_future(_ping(emulator, session))
    try:
        if first is not None and not initiation:
            await _on_client_event(emulator, session, first)
        while (message := await _receive(websocket)) is not None:
            session.record(message)
            await _on_client_event(emulator, session, message)
    except WebSocketDisconnect:
        pass
    finally:
        pinger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pinger
        session._socket = None
        emulator.end_session(session.conversation_id)
        for forward in list(session.monitors):
            with contextlib.suppress(Exception):
                await forward({"type": "_closed"})


async def _first_message(websocket: WebSocket, timeout: float) -> tuple[bool, Json | None]:
    """(client gone, its first message or None when none came within `timeout`)."""
    try:
        first = await asyncio.wait_for(_receive(websocket), timeout)
    except asyncio.TimeoutError:
        return False, None
    except WebSocketDisconnect:
        return True, None
    return first is None, first


async def _receive(websocket: WebSocket) -> Json | None:
    """The next JSON message, or None once the client is gone."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    text = message.get("text") or (message.get("bytes") or b"").decode()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        # The API's answer to a message it cannot read: close 1008 (api-facts §8, invalid_message).
        await websocket.close(POLICY_VIOLATION, "invalid_message")
        return None
    return parsed


async def _on_client_event(emulator: Emulator, session: Session, message: Json) -> None:
    conversation = emulator.conversation(session.conversation_id) or {}
    transcript = conversation.setdefault("transcript", [])
    elapsed = max(0, int(emulator.clock()) - int(conversation["metadata"]["start_time_unix_secs"]))
    if message.get("type") == "user_message":
        # The GET of a live conversation shows its turns so far (text turns, api-facts §3).
        user = {"role": "user", "message": message.get("text"), "source_medium": "text"}
        transcript.append(user | {"time_in_call_secs": elapsed})
        event = {"agent_response": emulator.agent_reply, "event_id": next(session.event_ids)}
        await session.send({"type": "agent_response", "agent_response_event": event})
        agent = {"role": "agent", "message": emulator.agent_reply}
        transcript.append(agent | {"time_in_call_secs": elapsed})


async def _ping(emulator: Emulator, session: Session) -> None:
    while True:
        await asyncio.sleep(emulator.ping_interval)
        event_id = next(session.event_ids)
        session.pings.append(event_id)
        with contextlib.suppress(Exception):  # the socket closed between two pings
            await session.send(
                {"type": "ping", "ping_event": {"event_id": event_id, "ping_ms": 20}}
            )


def start_session(
    emulator: Emulator, agent_id: str, initiation: Json, source: str, authorization: str
) -> Session:
    """Store the conversation an agent-socket connection starts (`in-progress`)."""
    _, conversation_id = emulator.new_call_ids()
    now = emulator.clock()
    client_data = copy.deepcopy({k: v for k, v in initiation.items() if k != "type"})
    source = (client_data.get("source_info") or {}).get("source") or source
    variables = client_data.setdefault("dynamic_variables", {})
    variables |= {
        "system__agent_id": agent_id,
        "system__current_agent_id": agent_id,
        "system__conversation_id": conversation_id,
        "system__time_utc": datetime.fromtimestamp(now, timezone.utc).isoformat(),
    }
    emulator.add_conversation(
        {
            "agent_id": agent_id,
            "conversation_id": conversation_id,
            "status": "in-progress",
            "metadata": {
                "start_time_unix_secs": int(now),
                "call_duration_secs": 0,
                "conversation_initiation_source": source,
                "authorization_method": authorization,
            },
            "conversation_initiation_client_data": client_data,
            "has_audio": False,
            "has_user_audio": False,
            "has_response_audio": False,
            "has_auxiliary_audio": False,
            "transcript": [],
        }
    )
    session = emulator.sessions[conversation_id] = Session(conversation_id)
    return session


async def monitor_socket(websocket: WebSocket) -> None:
    emulator = _emulator(websocket)
    record = _count(emulator, websocket, "monitor_ws")
    conversation_id = websocket.path_params["conversation_id"]
    key = websocket.headers.get("xi-api-key")
    if not key or (emulator.api_key is not None and key != emulator.api_key):
        record.status = 403
        await websocket.close(POLICY_VIOLATION)  # before accept: HTTP 403 on the handshake
        return
    record.status = 101
    await websocket.accept()
    conversation = emulator.conversation(conversation_id)
    refusal = emulator.monitor_refusal
    if refusal is None and (conversation is None or conversation["status"] not in LIVE):
        refusal = "conversation_over"
    if refusal is not None:
        await websocket.close(POLICY_VIOLATION, f"{refusal}: {MONITOR_REASONS[refusal]}")
        return
    assert conversation is not None
    session = emulator.sessions.get(conversation_id)
    for event in _recent_events(conversation, session):
        await websocket.send_text(json.dumps(event))
    closed = asyncio.Event()

    async def forward(event: Json) -> None:
        if event["type"] == "_closed":
            closed.set()
            await websocket.close(1000, "conversation ended")
        else:
            await websocket.send_text(json.dumps(event))

    if session is not None:
        session.monitors.append(forward)
    commands = emulator.monitor_commands.setdefault(conversation_id, [])
    try:
        while not closed.is_set() and (command := await _receive(websocket)) is not None:
            commands.append(command)
            if command.get("command_type") == "end_call":
                if session is not None:
                    await session.close(1000, "end_call")
                emulator.end_session(conversation_id)
                await websocket.close(1000, "call ended")
                return
    except (WebSocketDisconnect, RuntimeError):
        pass  # the conversation closed this monitor while it was reading
    finally:
        if session is not None and forward in session.monitors:
            session.monitors.remove(forward)


def _recent_events(conversation: Json, session: Session | None) -> list[Json]:
    """What a monitor gets on connect: the session's events, or for a call held by ElevenLabs
    (no socket here) its stored transcript as `user_transcript`/`agent_response` events."""
    if session is not None:
        return [e for e in session.sent if e["type"] != "ping"][-REPLAYED:]
    events: list[Json] = []
    for n, turn in enumerate(conversation.get("transcript") or [], 1):
        if not turn.get("message"):
            continue
        if turn.get("role") == "agent":
            body: Json = {"agent_response": turn["message"], "event_id": n}
            events.append({"type": "agent_response", "agent_response_event": body})
        else:
            body = {"user_transcript": turn["message"], "event_id": n}
            events.append({"type": "user_transcript", "user_transcription_event": body})
    return events[-REPLAYED:]
