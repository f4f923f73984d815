"""The emulator's monitoring socket `/v1/convai/conversations/{id}/monitor`.

See docs/protocol.md §11 and §12.

As documented: the key comes as `xi-api-key` or `Authorization: Bearer <key>`; `events_format` is
`json` (the default) or `opentelemetry`; the server sends `{"type": "connected"}`, replays the
conversation's recent events (≈ the last 100, no pings), sends `{"type": "history_complete"}`, then
forwards new events. Commands are recorded (`Emulator.monitor_commands[id]`): `end_call` ends the
conversation and both sockets; `enable_human_takeover` stops the agent answering user messages,
`send_human_message {text}` then reaches the user as an `agent_response`, and
`disable_human_takeover` gives the conversation back to the agent. A conversation can only be
monitored once it has begun: `initiated` is refused, and so is one that is over or unknown.

ASSUMPTIONS (the real behaviour is unconfirmed, docs/protocol.md §11), all here:
- A handshake without a valid key is refused with HTTP 403.
- A refusal for plan (Enterprise or the `realtime-monitoring` flag), key scope (`CONVAI_WRITE`),
  role (EDITOR access), monitoring disabled, a conversation not begun or one that is over accepts
  the handshake and closes at once with code 1008 (the API's code for auth and contract errors)
  and reason `"<refusal>: <text>"`, so a client can tell them apart. `monitor_refusal` forces one.
- `send_human_message` while no takeover is on is recorded and not delivered.
- `events_format=opentelemetry` is not emulated: refused with 1008 `unsupported: ...`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from ._sockets import POLICY_VIOLATION, Session, _count, _emulator, _receive, add_turns, answer

if TYPE_CHECKING:
    from ._emulator import Emulator

Json = dict[str, Any]
MONITOR_REASONS = {
    "plan": "real-time monitoring needs an Enterprise plan or the realtime-monitoring feature flag",
    "scope": "the API key lacks the CONVAI_WRITE (ElevenLabs Agents Write) scope",
    "role": "monitoring needs EDITOR access to the agent's workspace",
    "monitoring_disabled": "monitoring is not enabled for this agent",
    "not_started": "the conversation has not begun yet",
    "conversation_over": "the conversation is not active",
    "unsupported": "the emulator sends events_format=json only",
    "invalid_request": "events_format must be json or opentelemetry",
}
MONITORABLE = "in-progress"
REPLAYED = 100


def _key(websocket: WebSocket) -> str:
    key = websocket.headers.get("xi-api-key")
    if key:
        return key
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _refusal(emulator: Emulator, websocket: WebSocket, conversation: Json | None) -> str | None:
    events_format = websocket.query_params.get("events_format", "json")
    if events_format not in ("json", "opentelemetry"):
        return "invalid_request"
    if emulator.monitor_refusal is not None:
        return str(emulator.monitor_refusal)
    if events_format == "opentelemetry":
        return "unsupported"
    if conversation is not None and conversation["status"] == "initiated":
        return "not_started"
    if conversation is None or conversation["status"] != MONITORABLE:
        return "conversation_over"
    return None


async def monitor_socket(websocket: WebSocket) -> None:
    emulator = _emulator(websocket)
    record = _count(emulator, websocket, "monitor_ws")
    conversation_id = websocket.path_params["conversation_id"]
    key = _key(websocket)
    if not key or (emulator.api_key is not None and key != emulator.api_key):
        record.status = 403
        await websocket.close(POLICY_VIOLATION)  # before accept: HTTP 403 on the handshake
        return
    record.status = 101
    await websocket.accept()
    conversation = emulator.conversation(conversation_id)
    refusal = _refusal(emulator, websocket, conversation)
    if refusal is not None:
        reason = MONITOR_REASONS.get(refusal, "refused")
        await websocket.close(POLICY_VIOLATION, f"{refusal}: {reason}")
        return
    assert conversation is not None
    session = emulator.sessions.get(conversation_id)
    await websocket.send_text(json.dumps({"type": "connected"}))
    for event in _recent_events(conversation, session):
        await websocket.send_text(json.dumps(event))
    await websocket.send_text(json.dumps({"type": "history_complete"}))
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
            await _takeover(emulator, conversation_id, session, command)
    except (WebSocketDisconnect, RuntimeError):
        pass  # the conversation closed this monitor while it was reading
    finally:
        if session is not None and forward in session.monitors:
            session.monitors.remove(forward)


async def _takeover(
    emulator: Emulator, conversation_id: str, session: Session | None, command: Json
) -> None:
    kind = command.get("command_type")
    if kind in ("enable_human_takeover", "disable_human_takeover"):
        if session is not None:
            session.human_takeover = kind == "enable_human_takeover"
        return
    if kind != "send_human_message" or not _taken_over(emulator, conversation_id):
        return
    if session is None:
        # A call ElevenLabs holds (no socket here): the human's text still shows in the transcript.
        add_turns(emulator, conversation_id, ("agent", _text(command)))
        return
    with contextlib.suppress(RuntimeError):  # the agent socket closed meanwhile
        await answer(emulator, session, None, _text(command))


def _taken_over(emulator: Emulator, conversation_id: str) -> bool:
    """Whether the latest takeover command on any monitor of the conversation enabled it."""
    for command in reversed(emulator.monitor_commands.get(conversation_id, [])):
        kind = command.get("command_type")
        if kind in ("enable_human_takeover", "disable_human_takeover"):
            return bool(kind == "enable_human_takeover")
    return False


def _text(command: Json) -> str:
    parameters = command.get("parameters")
    text = parameters.get("text") if isinstance(parameters, dict) else None
    return text if isinstance(text, str) else ""


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
