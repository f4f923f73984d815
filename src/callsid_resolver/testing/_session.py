"""`Session`: one agent-socket conversation as the emulator sees it (docs/protocol.md §8).

It records what each side said and sends server events through a `Link`, the one thing it
knows of the socket: the I/O front (`_websockets`) attaches the link when the client connects
and detaches it when the client leaves, so nothing here imports a web framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Protocol

from .._json import Json

__all__ = ["CLOSED", "Link", "MonitorForward", "Session"]

# A monitoring socket watching the session: called with each server event (and `_closed`).
MonitorForward = Callable[[Json], Awaitable[None]]
CLOSED = "_closed"  # the event a monitor gets when the agent socket is gone


class Link(Protocol):
    """The client's end of an agent socket, as the I/O front provides it."""

    @property
    def connected(self) -> bool:
        """True until either side closed the socket."""
        ...

    async def send_text(self, text: str) -> None:
        """Send one text frame."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close the socket with `code` and `reason`."""
        ...


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
        self.monitors: list[MonitorForward] = []
        self.human_takeover = False  # set by the monitor's `enable_human_takeover`
        self.subprotocol: str | None = None  # what the handshake answered
        self.link: Link | None = None
        self._lock = asyncio.Lock()

    def attach(self, link: Link, loop: asyncio.AbstractEventLoop) -> None:
        """Connect the session to the client's socket, served on `loop`."""
        self.link, self.loop = link, loop

    def detach(self) -> None:
        """The client's socket is gone: nothing more can be sent."""
        self.link = None

    @property
    def live(self) -> bool:
        """True while the client's socket is connected."""
        return self.link is not None

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

    def next_event_id(self) -> int:
        """The `event_id` of the next server event that carries one."""
        return next(self.event_ids)

    async def send(self, event: Json) -> None:
        """Send one server event to the client, and to every monitor watching.

        Raises:
            RuntimeError: the session is closed.
        """
        if self.link is None:
            raise RuntimeError(f"the session {self.conversation_id} is closed")
        async with self._lock:
            self.sent.append(event)
            await self.link.send_text(json.dumps(event))
        if event["type"] != "ping":
            await self.notify_monitors(event)

    async def notify_monitors(self, event: Json) -> None:
        """Hand one event to every monitor watching (a monitor that left is skipped)."""
        for forward in list(self.monitors):
            with contextlib.suppress(Exception):  # a monitor that left is not our problem
                await forward(event)

    def new_tool_call(self, tool_name: str, parameters: Json) -> tuple[str, Json]:
        """A `client_tool_call` event of the agent and its `tool_call_id` (not sent yet)."""
        event_id = self.next_event_id()
        tool_call_id = f"toolu_emu{self.conversation_id[-8:]}{event_id:04d}"
        body = {"tool_name": tool_name, "tool_call_id": tool_call_id, "parameters": parameters}
        event = {"type": "client_tool_call", "client_tool_call": body | {"event_id": event_id}}
        return tool_call_id, event

    async def call_client_tool(self, tool_name: str, parameters: Json) -> str:
        """Make the agent send a `client_tool_call`; its `tool_call_id`."""
        tool_call_id, event = self.new_tool_call(tool_name, parameters)
        await self.send(event)
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
        if self.link is not None and self.link.connected:
            with contextlib.suppress(Exception):
                await self.link.close(code, reason)
