"""The agent socket's behaviour (docs/protocol.md §8), as functions of the state with no I/O.

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

Shaped like h11: the I/O front (`_websockets`) reports what the client did (`open_agent_socket`,
`start_session`, `receive`, `next_ping`, `finish`) and carries out the returned `Reaction`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from .._json import Json
from ._session import Session
from ._signing import check_signature
from ._state import EmulatorState
from ._synthetic import started_conversation

__all__ = [
    "AGENT_PATH",
    "BEARER",
    "MAIN_PROTOCOL",
    "NORMAL_CLOSURE",
    "POLICY_VIOLATION",
    "Authorization",
    "Handshake",
    "Reaction",
    "agent_says",
    "finish",
    "invalid_message",
    "next_ping",
    "open_agent_socket",
    "parse_client_message",
    "receive",
    "start_session",
]

POLICY_VIOLATION = 1008
NORMAL_CLOSURE = 1000
MAIN_PROTOCOL = "convai"  # what `@elevenlabs/client` always offers (docs/protocol.md §12)
BEARER = "bearer."
AGENT_PATH = "/v1/convai/conversation"
Authorization = Literal["public", "signed_url", "authorization_header"]


@dataclass(frozen=True)
class Handshake:
    """The emulator's answer to an agent-socket handshake: refused (HTTP 403) or accepted with
    `subprotocol`, and how the client authorized (the conversation's `authorization_method`)."""

    accepted: bool
    agent_id: str
    subprotocol: str | None = None
    authorization: Authorization = "public"
    source: str = "unknown"


@dataclass
class Reaction:
    """What the server does next: send `events` in order, then close with `close` if given."""

    events: list[Json] = field(default_factory=list)
    close: tuple[int, str] | None = None


def open_agent_socket(
    state: EmulatorState, params: Sequence[tuple[str, str]], subprotocols: Sequence[str]
) -> Handshake:
    """Log a handshake and decide it: the agent, its credential, the subprotocol answered."""
    record = state.requests.add("GET", AGENT_PATH, params, "agent_ws")
    query = dict(params)  # the last value of a repeated parameter, as Starlette reads it
    agent_id = query.get("agent_id", "")
    signature = query.get("conversation_signature")
    token = next((p[len(BEARER) :] for p in subprotocols if p.startswith(BEARER)), None)
    credential = signature if signature is not None else token
    refused = not agent_id or (credential is None and state.settings.require_signed_url)
    if credential is not None and agent_id:
        refused = check_signature(state, agent_id, credential) is not None
    record.status = 403 if refused else 101
    if refused:
        return Handshake(accepted=False, agent_id=agent_id)
    how: Authorization = (
        "public"
        if credential is None
        else "signed_url"
        if signature is not None
        else "authorization_header"
    )
    return Handshake(
        accepted=True,
        agent_id=agent_id,
        subprotocol=MAIN_PROTOCOL if MAIN_PROTOCOL in subprotocols else None,
        authorization=how,
        source=query.get("source", "unknown"),
    )


def parse_client_message(text: str) -> Json | None:
    """A client frame as a JSON object, or None when the API could not read it (it then closes
    1008 `invalid_message`, docs/protocol.md §8)."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def start_session(
    state: EmulatorState, handshake: Handshake, first: Json | None
) -> tuple[Session, Reaction]:
    """Start the conversation of an accepted handshake, given the client's first message (None
    when none came in time); the session and the server's opening events."""
    initiation: Json = {}
    if first is not None and first.get("type") == "conversation_initiation_client_data":
        initiation = first
    session = _store_conversation(state, handshake, initiation)
    meta = {
        "conversation_id": session.conversation_id,
        "agent_output_audio_format": "pcm_16000",
        "user_input_audio_format": "pcm_16000",
    }
    opening = Reaction(
        [
            {
                "type": "conversation_initiation_metadata",
                "conversation_initiation_metadata_event": meta,
            }
        ]
    )
    if first is None:
        return session, opening
    answer = receive(state, session, first)  # an initiation is recorded and needs no answer
    return session, Reaction(opening.events + answer.events, answer.close)


def receive(state: EmulatorState, session: Session, message: Json) -> Reaction:
    """Record one client event and answer it."""
    session.record(message)
    kind = message.get("type")
    strict = state.settings.profile.strict_client_events
    if strict and kind == "client_tool_result" and not isinstance(message.get("result"), str):
        return invalid_message("client_tool_result.result must be a string")
    if kind == "user_message" and not session.human_takeover:
        return Reaction(
            [agent_says(state, session, message.get("text"), state.settings.agent_reply)]
        )
    if kind == "user_message":  # a human answers instead (monitor `send_human_message`)
        state.add_turns(session.conversation_id, ("user", message.get("text")))
    return Reaction()


def agent_says(state: EmulatorState, session: Session, said: Any, reply: str) -> Json:
    """The agent's (or the human operator's) `agent_response` to what the user `said` (None:
    nobody spoke first), with both turns added to the transcript."""
    turns: list[tuple[str, Any]] = [("user", said)] if said is not None else []
    state.add_turns(session.conversation_id, *turns, ("agent", reply))
    event = {"agent_response": reply, "event_id": session.next_event_id()}
    return {"type": "agent_response", "agent_response_event": event}


def invalid_message(message: str) -> Reaction:
    """What the API does with a message it cannot accept: an `error` event, then close 1008."""
    error = {"code": POLICY_VIOLATION, "error_type": "invalid_message", "message": message}
    return Reaction(
        [{"type": "error", "error_event": error}], (POLICY_VIOLATION, "invalid_message")
    )


def next_ping(session: Session) -> Json:
    """The next `ping` event; its `event_id` is remembered to match the client's `pong`."""
    event_id = session.next_event_id()
    session.pings.append(event_id)
    return {"type": "ping", "ping_event": {"event_id": event_id, "ping_ms": 20}}


def finish(state: EmulatorState, session: Session) -> None:
    """The client's socket is gone: the conversation is over (status `done`)."""
    session.detach()
    state.end_session(session.conversation_id)


def _store_conversation(state: EmulatorState, handshake: Handshake, initiation: Json) -> Session:
    """Store the conversation an agent-socket connection starts (`in-progress`)."""
    _, conversation_id = state.new_call_ids()
    now = state.clock()
    agent_id = handshake.agent_id
    client_data = copy.deepcopy({k: v for k, v in initiation.items() if k != "type"})
    source = (client_data.get("source_info") or {}).get("source") or handshake.source
    variables = client_data.setdefault("dynamic_variables", {})
    variables |= {
        "system__agent_id": agent_id,
        "system__current_agent_id": agent_id,
        "system__conversation_id": conversation_id,
        "system__time_utc": datetime.fromtimestamp(now, timezone.utc).isoformat(),
    }
    state.add_conversation(
        started_conversation(
            agent_id=agent_id,
            conversation_id=conversation_id,
            status="in-progress",
            metadata={
                "start_time_unix_secs": int(now),
                "conversation_initiation_source": source,
                "authorization_method": handshake.authorization,
            },
            client_data=client_data,
        )
    )
    session = state.sessions[conversation_id] = Session(conversation_id)
    session.subprotocol = handshake.subprotocol
    return session
