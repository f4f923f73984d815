"""`MonitorChannel`: commands into a conversation ElevenLabs holds, over its monitoring socket.

`wss://<host>/v1/convai/conversations/{conversation_id}/monitor` (docs/protocol.md §11, §12) needs
an Enterprise plan or the `realtime-monitoring` feature flag, a key with the `CONVAI_WRITE` scope
(sent as `xi-api-key`, or as `Authorization: Bearer`) and EDITOR access, and a conversation that
has begun. It opens with `{"type": "connected"}`, replays the recent history, marks its end with
`{"type": "history_complete"}`, then forwards new events. It takes `contextual_update`,
`end_call`, `transfer_to_number` and the human-takeover commands (`enable_human_takeover`,
`send_human_message`, `disable_human_takeover`); it has no `user_message` and no client tool
result. The channel resolves a call SID to the conversation id, keeps one socket per live
conversation (reused until the server closes it), and turns refusals and faults into named
errors (never a websockets exception, never the key); how the API refuses is unconfirmed, and
every assumption about it is in `_refusals`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from typing_extensions import Self

from ._errors import ConversationOver, MonitorError, MonitorRefused, MonitorUnavailable
from ._monitor_socket import MonitorEventHandler, MonitorSocket, MonitorStats
from ._protocol import MonitorCommand, monitor_url
from ._refusals import (
    ACCOUNT_REFUSAL_TTL,
    ACCOUNT_WIDE,
    ENDED_CODES,
    SETTLE_SECONDS,
    refusal_from_status,
)
from ._target import Target
from ._transport import INSTALL_HINT, Batch, confirmed, open_socket

if TYPE_CHECKING:
    from .._async.client import AsyncElevenLabsClient
    from .._async.resolver import AsyncCallSidResolver

__all__ = ["MonitorChannel"]

logger = logging.getLogger("callsid_resolver.live")


class MonitorChannel:
    """Sends monitor commands to live conversations, by call SID or conversation id.

    `client` gives the host and the API key; `api_key=` overrides the key, or `bearer_token=`
    authenticates with `Authorization: Bearer <token>` instead. `resolver` turns call SIDs into
    conversation ids. `on_event(conversation_id, event)` hears each new event of a monitored
    conversation (the replayed history is not passed on). Use as an async context manager, or
    call `aclose()`. Every failure is a `MonitorError`: `MonitorRefused` (a subclass per
    documented requirement) when the API said no, `MonitorUnavailable` otherwise.
    """

    def __init__(
        self,
        client: AsyncElevenLabsClient,
        *,
        resolver: AsyncCallSidResolver | None = None,
        api_key: str | None = None,
        bearer_token: str | None = None,
        on_event: MonitorEventHandler | None = None,
        open_timeout: float = 10.0,
        settle: float = SETTLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if api_key is not None and bearer_token is not None:
            raise ValueError("give api_key or bearer_token, not both")
        self._base_url = client.base_url
        if bearer_token is not None:
            token = _header_value("bearer_token", bearer_token)
            self._headers = {"Authorization": f"Bearer {token}"}
        elif api_key is not None:
            self._headers = {"xi-api-key": _header_value("api_key", api_key)}
        else:
            self._headers = client.auth_headers()
        self._secrets = tuple(v.partition(" ")[2] or v for v in self._headers.values())
        self.resolver = resolver
        self._on_event = on_event
        self._open_timeout = open_timeout
        self._settle = settle
        self._clock = clock
        self._sockets: dict[str, MonitorSocket] = {}
        self._opening: dict[str, asyncio.Future[MonitorSocket]] = {}
        # Only refusals of the key or workspace are remembered: a conversation refused now may
        # be one that has not started yet (`_refusals`, assumption 6).
        self._account_refusal: tuple[MonitorRefused, float] | None = None
        self._closing: set[MonitorSocket] = set()

    def __repr__(self) -> str:
        # The headers (the API key) stay out.
        return f"<MonitorChannel base_url={self._base_url!r} open={len(self._sockets)}>"

    async def conversation_id_for(
        self, *, call_sid: str | None = None, conversation_id: str | None = None
    ) -> str:
        """The conversation to command: `conversation_id`, or the one `call_sid` resolves to."""
        target = Target.of(call_sid=call_sid, conversation_id=conversation_id)
        if target.conversation_id is not None:
            return target.conversation_id
        assert target.call_sid is not None
        if self.resolver is None:
            raise ValueError("a call SID needs a resolver: MonitorChannel(client, resolver=...)")
        return (await self.resolver.resolve(target.call_sid)).conversation_id

    def stats(self, conversation_id: str) -> MonitorStats | None:
        """What the open socket of `conversation_id` received; None when none is open."""
        monitor = self._sockets.get(conversation_id)
        return monitor.stats() if monitor is not None else None

    async def contextual_update(
        self, text: str, *, call_sid: str | None = None, conversation_id: str | None = None
    ) -> str:
        """Inject context into the live conversation; returns its conversation id."""
        command = MonitorCommand.contextual_update(text)
        return await self.send(command, call_sid=call_sid, conversation_id=conversation_id)

    async def end_call(
        self, *, call_sid: str | None = None, conversation_id: str | None = None
    ) -> str:
        """End the call through its monitoring socket (docs/protocol.md §11).

        Args:
            call_sid: the call's `system__call_sid` (needs the channel's resolver).
            conversation_id: the conversation, when you have it.

        Returns:
            The conversation id the command went to.

        Raises:
            MonitorError: the socket was refused (plan, scope, monitoring disabled) or dropped.
        """
        return await self.send(
            MonitorCommand.end_call(), call_sid=call_sid, conversation_id=conversation_id
        )

    async def transfer_to_number(
        self, phone_number: str, *, call_sid: str | None = None, conversation_id: str | None = None
    ) -> str:
        """Transfer the call (the agent needs the `transfer_to_number` system tool)."""
        command = MonitorCommand.transfer_to_number(phone_number)
        return await self.send(command, call_sid=call_sid, conversation_id=conversation_id)

    async def enable_human_takeover(
        self, *, call_sid: str | None = None, conversation_id: str | None = None
    ) -> str:
        """Take the conversation over: the agent stops answering, `send_human_message` speaks."""
        command = MonitorCommand(command_type="enable_human_takeover")
        return await self.send(command, call_sid=call_sid, conversation_id=conversation_id)

    async def send_human_message(
        self, text: str, *, call_sid: str | None = None, conversation_id: str | None = None
    ) -> str:
        """Answer the user as the human operator (after `enable_human_takeover`)."""
        command = MonitorCommand(command_type="send_human_message", parameters={"text": text})
        return await self.send(command, call_sid=call_sid, conversation_id=conversation_id)

    async def disable_human_takeover(
        self, *, call_sid: str | None = None, conversation_id: str | None = None
    ) -> str:
        """Hand the conversation back to the agent."""
        command = MonitorCommand(command_type="disable_human_takeover")
        return await self.send(command, call_sid=call_sid, conversation_id=conversation_id)

    async def send(
        self,
        command: MonitorCommand,
        *,
        call_sid: str | None = None,
        conversation_id: str | None = None,
    ) -> str:
        """Send any monitor command; returns the conversation id once the server has it."""
        cid = await self.conversation_id_for(call_sid=call_sid, conversation_id=conversation_id)
        try:
            await confirmed(await self.write(cid, command))
        except ConversationOver as exc:
            # After `end_call` the server may close before answering the confirming ping: that
            # close is the command's effect, not its failure (`_refusals`, assumption 5).
            if command.command_type != "end_call" or exc.close_code not in ENDED_CODES:
                raise
        return cid

    async def write(self, conversation_id: str, command: MonitorCommand) -> Batch:
        """Write `command` on the conversation's socket, opening it if needed.

        The interface the `Sender` uses: returns the batch whose result confirms the write (see
        `_transport.Confirmer`); raises a `MonitorError` when the socket cannot take it.
        """
        monitor = await self._socket(conversation_id)
        try:
            await monitor.connection.send(command.to_json())
        except Exception:  # websockets' ConnectionClosed, or the transport failing under it
            raise self._forget(monitor) from None
        return monitor.confirmer.after_write()

    async def _socket(self, conversation_id: str) -> MonitorSocket:
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

    async def _connect(self, conversation_id: str) -> MonitorSocket:
        # Events as JSON, said explicitly (the other documented format is `opentelemetry`):
        # the replay markers and `on_event` depend on it (docs/protocol.md §12).
        url = monitor_url(self._base_url, conversation_id) + "?events_format=json"
        try:
            connection = await open_socket(
                url, headers=self._headers, open_timeout=self._open_timeout
            )
        except Exception as exc:
            raise self._connect_error(conversation_id, exc) from None
        monitor = MonitorSocket(conversation_id, connection, self._on_event)
        # A refusal may come as a close right after the handshake (`_refusals`, assumption 3);
        # `connected`, the documented first message, ends the wait at once.
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

    def _connect_error(self, conversation_id: str, exc: Exception) -> MonitorError:
        """A failed handshake as our error; no text of it may hold the key (it can echo it)."""
        if isinstance(exc, ImportError):
            return MonitorUnavailable(conversation_id, INSTALL_HINT)
        try:
            from websockets.exceptions import InvalidHeader, InvalidMessage, InvalidStatus
        except ImportError:
            return MonitorUnavailable(conversation_id, INSTALL_HINT)
        if isinstance(exc, InvalidStatus):
            status, body = exc.response.status_code, bytes(exc.response.body or b"")
            refusal = refusal_from_status(conversation_id, status, self._scrub(body))
            return self._remember(refusal)
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            return MonitorUnavailable(conversation_id, "timed out opening the monitor socket")
        if isinstance(exc, OSError):
            why = f"{type(exc).__name__}: {exc.strerror}" if exc.strerror else type(exc).__name__
            return MonitorUnavailable(conversation_id, why)
        if isinstance(exc, InvalidMessage):
            return MonitorUnavailable(conversation_id, "the server's handshake reply was garbled")
        if isinstance(exc, InvalidHeader):
            # Raised for our own credential header too (CR, LF or NUL in it), and its text
            # holds the value: name the header, never show the value.
            name = str(exc.name).lower()
            if name in {h.lower() for h in self._headers}:
                why = f"the {name} header (the credential) is not a valid HTTP header value"
                return MonitorUnavailable(conversation_id, why + " (not shown)")
            return MonitorUnavailable(conversation_id, f"the server sent an invalid {name} header")
        return MonitorUnavailable(conversation_id, f"could not connect ({type(exc).__name__})")

    def _scrub(self, body: bytes) -> bytes:
        """A refusal body without this channel's credentials (a server may echo them)."""
        for secret in self._secrets:
            if secret:
                body = body.replace(secret.encode(), b"***")
        return body

    def _forget(self, monitor: MonitorSocket) -> MonitorError:
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


def _header_value(name: str, value: str) -> str:
    """A credential fit for a header: surrounding whitespace (a key read from a file) stripped,
    control characters and non-ASCII refused without showing the value."""
    value = value.strip()
    if not value or not value.isascii() or not value.isprintable() or " " in value:
        raise ValueError(f"{name} is empty or holds spaces, control or non-ASCII characters")
    return value
