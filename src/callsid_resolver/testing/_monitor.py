"""The monitoring socket's behaviour `/v1/convai/conversations/{id}/monitor`, with no I/O.

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

The I/O front (`_websockets`) reports the handshake (`open_monitor`) and each command
(`on_command`) and carries out what they return.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .._json import Json
from ._agent import NORMAL_CLOSURE, POLICY_VIOLATION, agent_says
from ._session import Session
from ._state import EmulatorState

__all__ = [
    "MONITORABLE",
    "MONITOR_REASONS",
    "REPLAYED",
    "MonitorOpening",
    "MonitorReaction",
    "monitor_path",
    "on_command",
    "open_monitor",
    "taken_over",
]

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


@dataclass
class MonitorOpening:
    """The answer to a monitor handshake: refused (HTTP 403), accepted then closed at once with
    `close`, or accepted with the opening `events` (connected, the replay, history_complete)."""

    accepted: bool
    events: list[Json] = field(default_factory=list)
    close: tuple[int, str] | None = None


@dataclass
class MonitorReaction:
    """What a monitor command does: events for the agent socket's client, then maybe closing
    the agent socket (`close_agent`) and the monitor itself (`close_monitor`)."""

    to_agent: list[Json] = field(default_factory=list)
    close_agent: tuple[int, str] | None = None
    close_monitor: tuple[int, str] | None = None


def monitor_path(conversation_id: str) -> str:
    """The monitoring socket's path for one conversation."""
    return f"/v1/convai/conversations/{conversation_id}/monitor"


def open_monitor(
    state: EmulatorState,
    conversation_id: str,
    params: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
) -> MonitorOpening:
    """Log a monitor handshake (`headers` with lower-case names) and decide it."""
    path = monitor_path(conversation_id)
    record = state.requests.add("GET", path, params, "monitor_ws")
    key = _key(headers)
    if not key or (state.api_key is not None and not hmac.compare_digest(key, state.api_key)):
        record.status = 403
        return MonitorOpening(accepted=False)
    record.status = 101
    conversation = state.conversation(conversation_id)
    refusal = _refusal(state, dict(params).get("events_format", "json"), conversation)
    if refusal is not None:
        reason = MONITOR_REASONS.get(refusal, "refused")
        return MonitorOpening(accepted=True, close=(POLICY_VIOLATION, f"{refusal}: {reason}"))
    assert conversation is not None  # `_refusal` refuses an unknown conversation
    state.monitor_commands.setdefault(conversation_id, [])
    replay = _recent_events(conversation, state.sessions.get(conversation_id))
    events = [{"type": "connected"}, *replay, {"type": "history_complete"}]
    return MonitorOpening(accepted=True, events=events)


def on_command(state: EmulatorState, conversation_id: str, command: Json) -> MonitorReaction:
    """Record one monitor command and carry out its effect on the conversation."""
    state.monitor_commands.setdefault(conversation_id, []).append(command)
    session = state.sessions.get(conversation_id)
    kind = command.get("command_type")
    if kind == "end_call":
        state.end_session(conversation_id)
        close_agent = (NORMAL_CLOSURE, "end_call") if session is not None else None
        return MonitorReaction(
            close_agent=close_agent, close_monitor=(NORMAL_CLOSURE, "call ended")
        )
    if kind in ("enable_human_takeover", "disable_human_takeover"):
        if session is not None:
            session.human_takeover = kind == "enable_human_takeover"
        return MonitorReaction()
    if kind != "send_human_message" or not taken_over(state, conversation_id):
        return MonitorReaction()
    if session is None:
        # A call ElevenLabs holds (no socket here): the human's text still shows in the transcript.
        state.add_turns(conversation_id, ("agent", _text(command)))
        return MonitorReaction()
    return MonitorReaction(to_agent=[agent_says(state, session, None, _text(command))])


def taken_over(state: EmulatorState, conversation_id: str) -> bool:
    """Whether the latest takeover command on any monitor of the conversation enabled it."""
    for command in reversed(state.monitor_commands.get(conversation_id, [])):
        kind = command.get("command_type")
        if kind in ("enable_human_takeover", "disable_human_takeover"):
            return bool(kind == "enable_human_takeover")
    return False


def _key(headers: Mapping[str, str]) -> str:
    key = headers.get("xi-api-key")
    if key:
        return key
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _refusal(state: EmulatorState, events_format: str, conversation: Json | None) -> str | None:
    if events_format not in ("json", "opentelemetry"):
        return "invalid_request"
    if state.settings.monitor_refusal is not None:
        return str(state.settings.monitor_refusal)
    if events_format == "opentelemetry":
        return "unsupported"
    if conversation is not None and conversation["status"] == "initiated":
        return "not_started"
    if conversation is None or conversation["status"] != MONITORABLE:
        return "conversation_over"
    return None


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
