"""One open monitoring socket (`MonitorChannel` keeps one per conversation): what it received
and how it failed. The channel's logic is in `_monitor`; refusal assumptions in `_refusals`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._errors import MonitorError, MonitorUnavailable
from ._protocol import ServerEvent, parse_server_event
from ._refusals import refusal_from_close
from ._transport import Confirmer, close_info

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = ["MonitorEventHandler", "MonitorSocket", "MonitorStats"]

MonitorEventHandler = Callable[[str, ServerEvent], None]
logger = logging.getLogger("callsid_resolver.live")


@dataclass(frozen=True)
class MonitorStats:
    """What one monitoring socket has received so far.

    `replayed` counts the history sent before `history_complete` (old events, not new ones);
    `new_events` counts what came after it. A server that sends no `history_complete` has all
    its events counted as new.
    """

    connected: bool
    history_complete: bool
    replayed: int
    new_events: int


class MonitorSocket:
    """One open monitoring socket and the task reading what the server sends on it."""

    def __init__(
        self,
        conversation_id: str,
        connection: ClientConnection,
        on_event: MonitorEventHandler | None,
    ) -> None:
        self.conversation_id = conversation_id
        self.connection = connection
        self.confirmer = Confirmer(connection, self.failure)
        self.first_message = asyncio.Event()
        self.connected = False
        self.history_complete = False
        self.replayed = 0
        self.new_events = 0
        self._on_event = on_event
        self.reader = asyncio.create_task(self._drain(), name="callsid-live-monitor")

    async def _drain(self) -> None:
        # Read everything so the socket keeps flowing; only events after the replay are new.
        with contextlib.suppress(Exception):
            async for raw in self.connection:
                self.first_message.set()
                self._receive(parse_server_event(raw))
        self.first_message.set()

    def _receive(self, event: ServerEvent) -> None:
        if event.type == "connected":
            self.connected = True
        elif event.type == "history_complete":
            self.history_complete = True
        elif self.connected and not self.history_complete:
            self.replayed += 1
        else:
            self.new_events += 1
            if self._on_event is not None:
                try:
                    self._on_event(self.conversation_id, event)
                except Exception:
                    logger.exception("on_event handler of the monitor failed")

    def stats(self) -> MonitorStats:
        return MonitorStats(self.connected, self.history_complete, self.replayed, self.new_events)

    @property
    def closed(self) -> bool:
        return self.reader.done()

    @property
    def finished(self) -> bool:
        return self.reader.done() and self.confirmer.idle

    def failure(self, exc: BaseException | None = None) -> MonitorError:
        """Why this socket cannot take commands (any more)."""
        code, reason = close_info(self.connection)
        refusal = refusal_from_close(self.conversation_id, code, reason)
        if refusal is not None:
            return refusal
        why = f"closed with code {code}" if code is not None else "the connection dropped"
        return MonitorUnavailable(self.conversation_id, why, sent=exc is not None)

    async def aclose(self) -> None:
        await self.connection.close()
        await self.reader
        await self.confirmer.aclose()
