"""The emulator's WebSockets: the agent socket and the monitoring socket (raw ASGI).

Agent socket `/v1/convai/conversation` (api-facts §8): a public agent by `agent_id`, a private one
by signed URL (`conversation_signature`, checked and refused once expired or altered). The client's
`conversation_initiation_client_data` starts a conversation; the server answers with
`conversation_initiation_metadata`, pings every `ping_interval` seconds expecting a `pong` with
the same `event_id`, answers `user_message` with `agent_reply`, and emits `client_tool_call` when
a test asks (`call_client_tool`). Every client event is recorded (`session_events`).

Monitor socket `/v1/convai/conversations/{id}/monitor` (api-facts §11): `xi-api-key` required;
replays the conversation's recent events, records commands (`monitor_commands`). How the real
API refuses (plan, scope, monitoring disabled, conversation over) is unconfirmed; the emulator
ASSUMES it accepts the handshake and closes at once with code 1008 and a reason
`"<refusal>: <text>"`, which is where a client would learn why. A handshake without a valid key
is refused with HTTP 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from ._emulator import Emulator

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

AGENT_PATH = "/v1/convai/conversation"
MONITOR_REASONS = {
    "plan": "monitoring requires an enterprise plan",
    "scope": "the API key lacks the ElevenLabs Agents Write scope",
    "monitoring_disabled": "monitoring is not enabled for this agent",
    "conversation_over": "the conversation is not active",
}
POLICY_VIOLATION = 1008


async def serve_socket(emulator: Emulator, scope: Scope, receive: Receive, send: Send) -> None:
    path: str = scope["path"]
    query = dict(parse_qsl(scope["query_string"].decode()))
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    if (await receive())["type"] != "websocket.connect":
        return
    if path == AGENT_PATH:
        await _agent(emulator, query, receive, send)
    elif path.startswith("/v1/convai/conversations/") and path.endswith("/monitor"):
        await _monitor(emulator, path.split("/")[4], headers, receive, send)
    else:
        await send({"type": "websocket.close", "code": POLICY_VIOLATION})


class _Socket:
    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive, self._send = receive, send
        self.lock = asyncio.Lock()

    async def send_json(self, message: Any) -> None:
        async with self.lock:
            await self._send({"type": "websocket.send", "text": json.dumps(message)})

    async def receive_json(self) -> Any | None:
        """The next JSON message, or None once the client is gone."""
        message = await self._receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text") or (message.get("bytes") or b"").decode()
        return json.loads(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        async with self.lock:
            await self._send({"type": "websocket.close", "code": code, "reason": reason})


async def _agent(emulator: Emulator, query: dict[str, str], receive: Receive, send: Send) -> None:
    agent_id = query.get("agent_id", "")
    signature = query.get("conversation_signature")
    if not agent_id or (signature is not None and emulator.check_signature(agent_id, signature)):
        await send({"type": "websocket.close", "code": POLICY_VIOLATION})  # HTTP 403
        return
    await send({"type": "websocket.accept"})
    socket = _Socket(receive, send)
    first = await socket.receive_json()
    if first is None:
        return
    conversation_id = emulator.start_session(agent_id, first)
    session = emulator.sessions[conversation_id]
    session.socket = socket
    await socket.send_json(
        {
            "type": "conversation_initiation_metadata",
            "conversation_initiation_metadata_event": {
                "conversation_id": conversation_id,
                "agent_output_audio_format": "pcm_16000",
                "user_input_audio_format": "pcm_16000",
            },
        }
    )
    pinger = asyncio.ensure_future(_ping(emulator, session))
    try:
        while (message := await socket.receive_json()) is not None:
            session.record(message)
            if message.get("type") == "user_message":
                event_id = next(session.event_ids)
                await socket.send_json(
                    {
                        "type": "agent_response",
                        "agent_response_event": {
                            "agent_response": emulator.agent_reply,
                            "event_id": event_id,
                        },
                    }
                )
    finally:
        pinger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pinger
        session.socket = None
        emulator.end_session(conversation_id)


async def _ping(emulator: Emulator, session: Session) -> None:
    while True:
        await asyncio.sleep(emulator.ping_interval)
        event_id = next(session.event_ids)
        session.pings.append(event_id)
        if session.socket is None:
            return
        await session.socket.send_json(
            {"type": "ping", "ping_event": {"event_id": event_id, "ping_ms": 20}}
        )


async def _monitor(
    emulator: Emulator, conversation_id: str, headers: dict[str, str], receive: Receive, send: Send
) -> None:
    key = headers.get("xi-api-key")
    if not key or (emulator.api_key is not None and key != emulator.api_key):
        await send({"type": "websocket.close", "code": POLICY_VIOLATION})  # HTTP 403
        return
    await send({"type": "websocket.accept"})
    socket = _Socket(receive, send)
    conv = emulator.conversation(conversation_id)
    refusal = emulator.monitor_refusal
    if refusal is None and (conv is None or conv["status"] not in ("initiated", "in-progress")):
        refusal = "conversation_over"
    if refusal is not None:
        await socket.close(POLICY_VIOLATION, f"{refusal}: {MONITOR_REASONS[refusal]}")
        return
    session = emulator.sessions.get(conversation_id)
    for event in (session.events if session else [])[-100:]:
        await socket.send_json(event)
    commands = emulator.monitor_commands.setdefault(conversation_id, [])
    while (message := await socket.receive_json()) is not None:
        commands.append(message)
        if message.get("command_type") == "end_call":
            emulator.end_session(conversation_id)
            await socket.close(1000, "call ended")
            return


class Session:
    """One agent-socket conversation as the emulator sees it."""

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        self.events: list[dict[str, Any]] = []
        self.pings: list[int] = []
        self.pongs: list[int] = []
        self.event_ids = itertools.count(1)
        self.socket: _Socket | None = None
        self.started = time.time()

    def record(self, message: dict[str, Any]) -> None:
        self.events.append(message)
        if message.get("type") == "pong":
            self.pongs.append(int(message.get("event_id", -1)))

    @property
    def missed_pongs(self) -> list[int]:
        answered = set(self.pongs)
        # The newest ping may still be on its way back.
        return [p for p in self.pings[:-1] if p not in answered]

    async def call_client_tool(self, tool_name: str, parameters: dict[str, Any]) -> str:
        if self.socket is None:
            raise RuntimeError("the session is closed")
        event_id = next(self.event_ids)
        tool_call_id = f"toolu_emu{self.conversation_id[-6:]}{event_id:04d}"
        await self.socket.send_json(
            {
                "type": "client_tool_call",
                "client_tool_call": {
                    "tool_name": tool_name,
                    "tool_call_id": tool_call_id,
                    "parameters": parameters,
                    "event_id": event_id,
                },
            }
        )
        return tool_call_id

    def tool_results(self, tool_call_id: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e.get("type") == "client_tool_result" and e.get("tool_call_id") == tool_call_id
        ]
