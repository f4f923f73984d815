"""The emulator's agent socket (docs/protocol.md §8); the monitoring socket is `_monitor_socket`.

Agent socket `/v1/convai/conversation`: a public agent by `agent_id`, a private one by signed URL
(`conversation_signature`, refused once expired or altered; `require_signed_url` makes every agent
private) or by a conversation token offered as the subprotocol `bearer.<token>` (the token is what
`Emulator.sign(agent_id)` returns). The official JavaScript client always offers the subprotocol
`convai` and fails when the server answers none, so `convai` is answered whenever offered
(docs/protocol.md §12). Each connection starts a conversation, stored `in-progress` with the dynamic
variables of the client's `conversation_initiation_client_data` (optional: when the first message is
something else, or nothing comes within `initiation_timeout`, the conversation starts without them).
The server answers `conversation_initiation_metadata`, pings every `ping_interval` seconds
expecting a `pong` with the same `event_id` (`Session.missed_pongs`), answers `user_message` with an
`agent_response` of `agent_reply` (unless a human took the conversation over on the monitor), and
sends `client_tool_call` when a test asks (`Emulator.call_client_tool`). Every client event is
recorded (`Emulator.session_events`); closing the socket ends the conversation (status `done`).

Under a profile with `strict_client_events` (the `observed` one) a `client_tool_result` whose
`result` is not a string gets what the API gives an invalid message: an `error` event with
`error_type: "invalid_message"` and close code 1008 (the AsyncAPI types `result` as a string,
docs/protocol.md §8, §12).

ASSUMPTION (unconfirmed): a handshake the API refuses (bad signed URL or token) gets HTTP 403.
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
MAIN_PROTOCOL = "convai"  # what `@elevenlabs/client` always offers (docs/protocol.md §12)
BEARER = "bearer."


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
        self.human_takeover = False  # set by the monitor's `enable_human_takeover`
        self.subprotocol: str | None = None  # what the handshake answered
        self._socket: WebSocket | None = None
        self._lock = asyncio.Lock()

    @property
    def live(self) -> bool:
        """True while the client's socket is connected."""
        return self._socket is not None

    @property
    def missed_pongs(self) -> list[int]:
        """Pings never answered (the newest one may still be on its way back, so not counted)."""
        answered = set(self.pongs)
        return [p for p in self.pings[:-1] if p not in answered]

    def record(self, message: Json) -> None:
        """Keep one client event (and note a pong's `event_id`)."""
        self.events.append(message)
        if message.get("type") == "pong":
            self.pongs.append(int(message.get("event_id", -1)))

    async def send(self, event: Json) -> None:
        """Send one server event to the client, and to every monitor watching.

        Raises:
            RuntimeError: the session is closed.
        """
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
        """Make the agent send a `client_tool_call`; its `tool_call_id`."""
        event_id = next(self.event_ids)
        tool_call_id = f"toolu_emu{self.conversation_id[-8:]}{event_id:04d}"
        body = {"tool_name": tool_name, "tool_call_id": tool_call_id, "parameters": parameters}
        await self.send(
            {"type": "client_tool_call", "client_tool_call": body | {"event_id": event_id}}
        )
        return tool_call_id

    def tool_results(self, tool_call_id: str) -> list[Json]:
        """The `client_tool_result` events answering `tool_call_id`."""
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
        """Close the socket with `code` and `reason`, if it is still open."""
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
    offered = [str(p) for p in websocket.scope.get("subprotocols") or ()]
    token = next((p[len(BEARER) :] for p in offered if p.startswith(BEARER)), None)
    credential = signature if signature is not None else token
    refused = not agent_id or (credential is None and emulator.require_signed_url)
    if credential is not None and agent_id:
        refused = emulator.check_signature(agent_id, credential) is not None
    if refused:
        record.status = 403
        await websocket.close(POLICY_VIOLATION)  # before accept: HTTP 403 on the handshake
        return
    record.status = 101
    subprotocol = MAIN_PROTOCOL if MAIN_PROTOCOL in offered else None
    await websocket.accept(subprotocol=subprotocol)
    gone, first = await _first_message(websocket, emulator.initiation_timeout)
    if gone:
        return
    initiation: Json = {}
    if first is not None and first.get("type") == "conversation_initiation_client_data":
        initiation = first
    source = websocket.query_params.get("source", "unknown")
    how = (
        "public"
        if credential is None
        else "signed_url"
        if signature is not None
        else "authorization_header"
    )
    session = start_session(emulator, agent_id, initiation, source, how)
    session.loop = asyncio.get_running_loop()
    session._socket = websocket
    session.subprotocol = subprotocol
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
        going = True
        if first is not None and not initiation:
            going = await _on_client_event(emulator, session, first)
        while going and (message := await _receive(websocket)) is not None:
            session.record(message)
            going = await _on_client_event(emulator, session, message)
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
        # The API's answer to a message it cannot read: close 1008, `invalid_message`
        # (docs/protocol.md §8).
        await websocket.close(POLICY_VIOLATION, "invalid_message")
        return None
    return parsed


async def _on_client_event(emulator: Emulator, session: Session, message: Json) -> bool:
    """Answer one client event; False once the conversation was closed over it."""
    kind = message.get("type")
    strict = emulator.profile.strict_client_events
    if strict and kind == "client_tool_result" and not isinstance(message.get("result"), str):
        await invalid_message(session, "client_tool_result.result must be a string")
        return False
    if kind == "user_message" and not session.human_takeover:
        await answer(emulator, session, message.get("text"), emulator.agent_reply)
    elif kind == "user_message":  # a human answers instead (monitor `send_human_message`)
        add_turns(emulator, session.conversation_id, ("user", message.get("text")))
    return True


async def answer(emulator: Emulator, session: Session, said: Any, reply: str) -> None:
    """The agent's (or the human operator's) `agent_response` to what the user `said`."""
    turns: list[tuple[str, Any]] = [("user", said)] if said is not None else []
    add_turns(emulator, session.conversation_id, *turns, ("agent", reply))
    event = {"agent_response": reply, "event_id": next(session.event_ids)}
    await session.send({"type": "agent_response", "agent_response_event": event})


def add_turns(emulator: Emulator, conversation_id: str, *turns: tuple[str, Any]) -> None:
    """Append turns to the stored transcript: the GET of a live conversation shows its turns so
    far (text turns, docs/protocol.md §3)."""
    conversation = emulator.conversation(conversation_id) or {}
    transcript = conversation.setdefault("transcript", [])
    started = int((conversation.get("metadata") or {}).get("start_time_unix_secs", 0))
    elapsed = max(0, int(emulator.clock()) - started)
    for role, text in turns:
        turn: Json = {"role": role, "message": text, "time_in_call_secs": elapsed}
        if role == "user":
            turn["source_medium"] = "text"
        transcript.append(turn)


async def invalid_message(session: Session, message: str) -> None:
    """What the API does with a message it cannot accept: an `error` event, then close 1008."""
    error = {"code": POLICY_VIOLATION, "error_type": "invalid_message", "message": message}
    with contextlib.suppress(Exception):
        await session.send({"type": "error", "error_event": error})
    await session.close(POLICY_VIOLATION, "invalid_message")


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
