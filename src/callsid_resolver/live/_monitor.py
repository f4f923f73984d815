"""`MonitorChannel`: commands into a conversation ElevenLabs holds, over its monitoring socket.

`wss://<host>/v1/convai/conversations/{conversation_id}/monitor` (api-facts §11: enterprise plans,
`xi-api-key` with the Agents Write scope, monitoring enabled on the agent) takes
`contextual_update`, `end_call` and `transfer_to_number`. It has no `user_message` and no client
tool result. The channel resolves a call SID to the conversation id, keeps one socket per live
conversation (reused until the server closes it), and turns refusals into named errors; how the
API refuses is unconfirmed, and every assumption about it is in `_refusals`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from typing_extensions import Self

from ._errors import ConversationOver, MonitorError, MonitorRefused, MonitorUnavailable
from ._protocol import MonitorCommand, monitor_url
from ._refusals import (
    ACCOUNT_REFUSAL_TTL,
    ACCOUNT_WIDE,
    ENDED_CODES,
    SETTLE_SECONDS,
    refusal_from_close,
    refusal_from_status,
)
from ._transport import Batch, Confirmer, close_info, confirmed, open_socket

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from .._client import AsyncElevenLabsClient
    from .._resolver import AsyncCallSidResolver

__all__ = ["MonitorChannel"]


class _Monitor:
    """One open monitoring socket and the task draining what the server replays on it."""

    def __init__(self, conversation_id: str, connection: ClientConnection) -> None:
        self.conversation_id = conversation_id
        self.connection = connection
        self.confirmer = Confirmer(connection, self.failure)
        self.first_message = asyncio.Event()
        self.reader = asyncio.create_task(self._drain(), name="callsid-live-monitor")

    async def _drain(self) -> None:
        # Replayed and live events are read so the socket keeps flowing; the sender has no use
        # for them (a monitoring UI would open its own socket).
        with contextlib.suppress(Exception):
            async for _ in self.connection:
                self.first_message.set()
        self.first_message.set()

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


class MonitorChannel:
    """Sends monitor commands to live conversations, by call SID or conversation id.

    `client` gives the host and the API key (`api_key=` overrides the key); `resolver` turns call
    SIDs into conversation ids. Use as an async context manager, or call `aclose()`.
    """

    def __init__(
        self,
        client: AsyncElevenLabsClient,
        *,
        resolver: AsyncCallSidResolver | None = None,
        api_key: str | None = None,
        open_timeout: float = 10.0,
        settle: float = SETTLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base_url = client.base_url
        self._headers = {"xi-api-key": api_key} if api_key else client.auth_headers()
        self.resolver = resolver
        self._open_timeout = open_timeout
        self._settle = settle
        self._clock = clock
        self._sockets: dict[str, _Monitor] = {}
        self._opening: dict[str, asyncio.Future[_Monitor]] = {}
        # Only refusals of the key or workspace are remembered: a conversation refused now may
        # be one that has not started yet (`_refusals`, assumption 6).
        self._account_refusal: tuple[MonitorRefused, float] | None = None
        self._closing: set[_Monitor] = set()

    def __repr__(self) -> str:
        # The headers (the API key) stay out.
        return f"<MonitorChannel base_url={self._base_url!r} open={len(self._sockets)}>"

    async def conversation_id_for(
        self, *, call_sid: str | None = None, conversation_id: str | None = None
    ) -> str:
        if conversation_id is not None:
            return conversation_id
        if call_sid is None:
            raise ValueError("give call_sid or conversation_id")
        if self.resolver is None:
            raise ValueError("a call SID needs a resolver: MonitorChannel(client, resolver=...)")
        return (await self.resolver.resolve(call_sid)).conversation_id

    async def contextual_update(
        self, text: str, *, call_sid: str | None = None, conversation_id: str | None = None
    ) -> str:
        """Inject context into the live conversation; returns its conversation id."""
        command = MonitorCommand.contextual_update(text)
        return await self.send(command, call_sid=call_sid, conversation_id=conversation_id)

    async def end_call(
        self, *, call_sid: str | None = None, conversation_id: str | None = None
    ) -> str:
        return await self.send(
            MonitorCommand.end_call(), call_sid=call_sid, conversation_id=conversation_id
        )

    async def transfer_to_number(
        self, phone_number: str, *, call_sid: str | None = None, conversation_id: str | None = None
    ) -> str:
        """Transfer the call (the agent needs the `transfer_to_number` system tool)."""
        command = MonitorCommand.transfer_to_number(phone_number)
        return await self.send(command, call_sid=call_sid, conversation_id=conversation_id)

    async def send(
        self,
        command: MonitorCommand,
        *,
        call_sid: str | None = None,
        conversation_id: str | None = None,
    ) -> str:
        cid = await self.conversation_id_for(call_sid=call_sid, conversation_id=conversation_id)
        try:
            await confirmed(await self._write(cid, command))
        except ConversationOver as exc:
            # After `end_call` the server may close before answering the confirming ping: that
            # close is the command's effect, not its failure (`_refusals`, assumption 5).
            if command.command_type != "end_call" or exc.close_code not in ENDED_CODES:
                raise
        return cid

    async def _write(self, conversation_id: str, command: MonitorCommand) -> Batch:
        """Write on the conversation's socket (opening it if needed); the batch to confirm."""
        from websockets.exceptions import ConnectionClosed

        monitor = await self._socket(conversation_id)
        try:
            await monitor.connection.send(command.to_json())
        except ConnectionClosed:
            raise self._forget(monitor) from None
        return monitor.confirmer.after_write()

    async def _socket(self, conversation_id: str) -> _Monitor:
        self._check_refused(conversation_id)
        monitor = self._sockets.get(conversation_id)
        if monitor is not None:
            if not monitor.closed:
                return monitor
            raise self._forget(monitor)
        opening = self._opening.get(conversation_id)
        if opening is None:
            # Concurrent first sends to one conversation share one handshake.
            opening = asyncio.ensure_future(self._connect(conversation_id))
            self._opening[conversation_id] = opening
            opening.add_done_callback(lambda _: self._opening.pop(conversation_id, None))
        return await asyncio.shield(opening)

    async def _connect(self, conversation_id: str) -> _Monitor:
        from websockets.exceptions import InvalidStatus

        url = monitor_url(self._base_url, conversation_id)
        try:
            connection = await open_socket(
                url, headers=self._headers, open_timeout=self._open_timeout
            )
        except InvalidStatus as exc:
            status, body = exc.response.status_code, bytes(exc.response.body or b"")
            raise self._remember(refusal_from_status(conversation_id, status, body)) from None
        except (OSError, asyncio.TimeoutError) as exc:
            raise MonitorUnavailable(conversation_id, f"{type(exc).__name__}: {exc}") from None
        monitor = _Monitor(conversation_id, connection)
        # A refusal may come as a close right after the handshake (`_refusals`, assumption 3).
        waiters = (asyncio.ensure_future(monitor.first_message.wait()),)
        await asyncio.wait(waiters, timeout=self._settle)
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        if monitor.closed:
            error = monitor.failure()
            await monitor.aclose()
            if isinstance(error, MonitorRefused):
                self._remember(error)
            raise error
        self._sockets[conversation_id] = monitor
        # A socket the server closes (the call ended) leaves the pool without waiting for a send.
        monitor.reader.add_done_callback(lambda _: self._forget(monitor))
        return monitor

    def _forget(self, monitor: _Monitor) -> MonitorError:
        """Drop a socket the server closed; the error a send on it gets."""
        if self._sockets.get(monitor.conversation_id) is monitor:
            del self._sockets[monitor.conversation_id]
            # Its tasks end with the connection; `aclose()` still awaits them.
            self._closing = {m for m in self._closing if not m.finished}
            self._closing.add(monitor)
        error = monitor.failure()
        if isinstance(error, MonitorRefused):
            self._remember(error)
        return error

    def _remember(self, error: MonitorRefused) -> MonitorRefused:
        if error.refusal in ACCOUNT_WIDE:
            self._account_refusal = (error, self._clock() + ACCOUNT_REFUSAL_TTL)
        return error

    def _check_refused(self, conversation_id: str) -> None:
        if self._account_refusal is None:
            return
        error, until = self._account_refusal
        if self._clock() >= until:
            self._account_refusal = None
            return
        raise type(error)(
            conversation_id,
            refusal=error.refusal,
            detail=f"{error.detail} (refused {ACCOUNT_REFUSAL_TTL:g} s ago or less; not retried)",
            status_code=error.status_code,
            close_code=error.close_code,
        )

    async def aclose(self) -> None:
        """Close every socket this channel opened."""
        for opening in list(self._opening.values()):
            opening.cancel()
        await asyncio.gather(*self._opening.values(), return_exceptions=True)
        monitors = list(self._sockets.values()) + list(self._closing)
        self._sockets.clear()
        self._closing.clear()
        await asyncio.gather(*(m.aclose() for m in monitors), return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
