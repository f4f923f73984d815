"""The agent and monitoring sockets over Starlette: the I/O front of `_agent` and `_monitor`.

Each endpoint reads frames, hands them to the behaviour functions and carries out what they
return (send, close); the timing (the initiation timeout, the ping loop) lives here too, since
it is the one part that waits. Refusing a handshake is closing before accepting it, which
Starlette answers with HTTP 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from .._json import Json
from ._agent import (
    POLICY_VIOLATION,
    Reaction,
    finish,
    next_ping,
    open_agent_socket,
    parse_client_message,
    receive,
    start_session,
)
from ._monitor import MonitorReaction, on_command, open_monitor
from ._session import CLOSED, Session
from ._state import EmulatorState

__all__ = ["StarletteLink", "agent_socket", "monitor_socket"]


class StarletteLink:
    """A Starlette `WebSocket` as the `Link` a `Session` sends through."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket

    @property
    def connected(self) -> bool:
        """True until either side closed the socket."""
        return self.websocket.application_state == WebSocketState.CONNECTED

    async def send_text(self, text: str) -> None:
        """Send one text frame."""
        await self.websocket.send_text(text)

    async def close(self, code: int, reason: str) -> None:
        """Close the socket with `code` and `reason`."""
        await self.websocket.close(code, reason)


async def agent_socket(state: EmulatorState, websocket: WebSocket) -> None:
    """Serve one agent-socket connection (`/v1/convai/conversation`)."""
    offered = [str(p) for p in websocket.scope.get("subprotocols") or ()]
    params = list(websocket.query_params.multi_items())
    handshake = open_agent_socket(state, params, offered)
    if not handshake.accepted:
        await websocket.close(POLICY_VIOLATION)  # before accept: HTTP 403 on the handshake
        return
    await websocket.accept(subprotocol=handshake.subprotocol)
    gone, first = await _first_message(websocket, state.settings.initiation_timeout)
    if gone:
        return
    session, opening = start_session(state, handshake, first)
    session.attach(StarletteLink(websocket), asyncio.get_running_loop())
    pinger = asyncio.ensure_future(_ping(state, session))
    try:
        going = await _carry_out(session, opening)
        while going and (message := await _receive(websocket)) is not None:
            going = await _carry_out(session, receive(state, session, message))
    except WebSocketDisconnect:
        pass
    finally:
        pinger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pinger
        finish(state, session)
        await session.notify_monitors({"type": CLOSED})


async def _carry_out(session: Session, reaction: Reaction) -> bool:
    """Send the reaction's events, then close if it says so; False once closed."""
    if reaction.close is None:
        for event in reaction.events:
            await session.send(event)
        return True
    for event in reaction.events:
        with contextlib.suppress(Exception):  # closing anyway: a failed send changes nothing
            await session.send(event)
    await session.close(*reaction.close)
    return False


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
    """The next JSON message, or None once the client is gone (or was closed for sending one
    the API could not read)."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    parsed = parse_client_message(message.get("text") or (message.get("bytes") or b"").decode())
    if parsed is None:
        await websocket.close(POLICY_VIOLATION, "invalid_message")
    return parsed


async def _ping(state: EmulatorState, session: Session) -> None:
    while True:
        await asyncio.sleep(state.settings.ping_interval)
        event = next_ping(session)
        with contextlib.suppress(Exception):  # the socket closed between two pings
            await session.send(event)


async def monitor_socket(state: EmulatorState, websocket: WebSocket) -> None:
    """Serve one monitoring-socket connection (`/v1/convai/conversations/{id}/monitor`)."""
    conversation_id = websocket.path_params["conversation_id"]
    params = list(websocket.query_params.multi_items())
    headers = {k.lower(): v for k, v in websocket.headers.items()}
    opening = open_monitor(state, conversation_id, params, headers)
    if not opening.accepted:
        await websocket.close(POLICY_VIOLATION)  # before accept: HTTP 403 on the handshake
        return
    await websocket.accept()
    if opening.close is not None:
        await websocket.close(*opening.close)
        return
    for event in opening.events:
        await websocket.send_text(json.dumps(event))
    session = state.sessions.get(conversation_id)
    closed = asyncio.Event()

    async def forward(event: Json) -> None:
        if event["type"] == CLOSED:
            closed.set()
            await websocket.close(1000, "conversation ended")
        else:
            await websocket.send_text(json.dumps(event))

    if session is not None:
        session.monitors.append(forward)
    try:
        while not closed.is_set() and (command := await _receive(websocket)) is not None:
            reaction = on_command(state, conversation_id, command)
            if session is not None:
                await _to_agent(session, reaction)
            if reaction.close_monitor is not None:
                await websocket.close(*reaction.close_monitor)
                return
    except (WebSocketDisconnect, RuntimeError):
        pass  # the conversation closed this monitor while it was reading
    finally:
        if session is not None and forward in session.monitors:
            session.monitors.remove(forward)


async def _to_agent(session: Session, reaction: MonitorReaction) -> None:
    with contextlib.suppress(RuntimeError):  # the agent socket closed meanwhile
        for event in reaction.to_agent:
            await session.send(event)
    if reaction.close_agent is not None:
        await session.close(*reaction.close_agent)
