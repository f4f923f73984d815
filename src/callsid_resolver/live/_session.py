"""`ConversationSession`: one conversation on the Agents WebSocket, opened by this process.

The protocol is in `_protocol` (sans-I/O); this module only runs the socket: one reader task
answers pings (a `pong` with the ping's `event_id`, before anything else is handled), hands client
tool calls to at most `max_tool_calls` handler tasks (so a slow handler never delays a pong, and a
flood of calls never starts a flood of tasks), records `conversation_id` and buffers events for
`events()`. Writes are confirmed in batches (see `_transport.Confirmer`): a send returns once the
server received it, or raises; it is never lost in silence.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from typing_extensions import Self

from ._errors import SessionClosed, SessionOpenFailed
from ._protocol import (
    ClientEvent,
    ClientToolCall,
    ClientToolResult,
    ContextualUpdate,
    ConversationInitiation,
    ConversationInitiationMetadata,
    DynamicValue,
    Ping,
    Pong,
    ServerEvent,
    UserActivity,
    UserMessage,
    agent_url,
    parse_server_event,
    tool_result_text,
)
from ._tools import ToolCalls, ToolHandler
from ._transport import (
    Batch,
    Confirmer,
    close_info,
    closed_text,
    confirmed,
    open_failure,
    open_socket,
)

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from .._async.client import AsyncElevenLabsClient

__all__ = ["ConversationSession", "ToolHandler"]

logger = logging.getLogger("callsid_resolver.live")


class ConversationSession:
    """A conversation with an ElevenLabs agent over the Agents WebSocket.

    ```python
    async with ConversationSession("agent_...", client=client, dynamic_variables={...}) as s:
        await s.send_contextual_update("CRM: open ticket #4711")
        async for event in s.events():
            ...
    ```

    With `client`, the socket opens through a signed URL (`client.get_signed_url`, private
    agents); with `public=True` (or only `base_url`), by `?agent_id=`; `url` takes a signed URL
    you fetched yourself. `tools` maps client tool names to handlers (sync or async, given the
    call's parameters); a handler's return value becomes the `client_tool_result` (a string on
    the wire, docs/protocol.md §8: structured values are sent JSON-encoded), an exception an
    error result. At most `max_tool_calls` handlers run at once; further calls wait their turn,
    and beyond `max_pending_tool_calls` waiting ones a call is answered at once with an error
    result. `confirm=False` returns from a send once it is written instead of once the server
    has it (faster; a drop may then lose what was written just before it). At most `max_events`
    unread events are buffered; older ones are dropped (`events_dropped` counts them).
    """

    def __init__(
        self,
        agent_id: str | None = None,
        *,
        client: AsyncElevenLabsClient | None = None,
        base_url: str | None = None,
        url: str | None = None,
        public: bool = False,
        dynamic_variables: Mapping[str, DynamicValue] | None = None,
        overrides: Mapping[str, Any] | None = None,
        user_id: str | None = None,
        tools: Mapping[str, ToolHandler] | None = None,
        open_timeout: float = 10.0,
        confirm: bool = True,
        max_events: int = 1000,
        max_tool_calls: int = 8,
        max_pending_tool_calls: int = 1000,
    ) -> None:
        if url is None and agent_id is None:
            raise ValueError("give agent_id (with client or base_url) or a signed url")
        if url is None and client is None and base_url is None:
            raise ValueError("give client= (signed URL) or base_url= (public agent)")
        self.agent_id = agent_id
        self._client = client
        self._base_url = base_url
        self._url = url
        self._public = public or client is None
        self._initiation = ConversationInitiation(
            dynamic_variables=dict(dynamic_variables) if dynamic_variables else None,
            conversation_config_override=dict(overrides) if overrides else None,
            user_id=user_id,
        )
        self._tool_calls = ToolCalls(
            tools,
            answer=self._answer_tool_call,
            refuse=self._refuse_tool_call,
            max_running=max_tool_calls,
            max_pending=max_pending_tool_calls,
        )
        self._open_timeout = open_timeout
        self._confirm = confirm
        self._events: collections.deque[ServerEvent] = collections.deque(maxlen=max_events)
        self.events_dropped = 0
        self._wakeup = asyncio.Event()
        self._started = asyncio.Event()
        self._connection: ClientConnection | None = None
        self._confirmer: Confirmer | None = None
        self._reader: asyncio.Task[None] | None = None
        self._close_callbacks: list[Callable[[ConversationSession], None]] = []
        self._closed = False
        self._close_done = False
        self._finished = False
        self._close_code: int | None = None
        self._close_reason = ""
        self.conversation_id: str | None = None
        self.metadata: ConversationInitiationMetadata | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self.conversation_id else "new"
        return (
            f"<ConversationSession agent_id={self.agent_id!r} "
            f"conversation_id={self.conversation_id!r} {state}>"
        )

    # -- lifecycle ------------------------------------------------------------------------
    async def open(self) -> Self:
        """Connect, send `conversation_initiation_client_data`, wait for the conversation id."""
        if self._connection is not None:
            raise RuntimeError("the session was opened already")
        url = await self._resolve_url()
        try:
            self._connection = await open_socket(url, open_timeout=self._open_timeout)
        except Exception as exc:
            raise open_failure(exc, url) from None
        self._confirmer = Confirmer(self._connection, self._drop_error)
        try:
            # The initiation data must be the first message (docs/protocol.md §8).
            await self._connection.send(self._initiation.to_json())
            self._reader = asyncio.create_task(self._read(), name="callsid-live-session")
            await asyncio.wait_for(self._started.wait(), self._open_timeout)
        except asyncio.TimeoutError:
            await self.close()
            raise SessionOpenFailed("no conversation_initiation_metadata in time") from None
        except Exception as exc:
            await self.close()
            if isinstance(exc, SessionOpenFailed):
                raise
            code, reason = close_info(self._connection)
            raise SessionOpenFailed(closed_text(code, reason)) from None
        except BaseException:
            await self.close()
            raise
        if self.conversation_id is None:  # the server closed before starting the conversation
            code, reason = close_info(self._connection)
            await self.close()
            raise SessionOpenFailed(closed_text(code, reason))
        return self

    async def _resolve_url(self) -> str:
        if self._url is not None:
            return self._url
        assert self.agent_id is not None
        if self._client is not None and not self._public:
            return (await self._client.get_signed_url(self.agent_id)).signed_url
        base = self._base_url or (self._client.base_url if self._client else None)
        assert base is not None
        return agent_url(base, self.agent_id)

    async def close(self) -> None:
        """Wait (briefly) for unconfirmed sends, stop tool handlers, close the socket.

        Safe to call more than once, and needed after the server closed the conversation too:
        it is what waits for the session's tasks to end.
        """
        if self._close_done:
            return
        self._closed = True  # no new sends from here on
        pending = self._confirmer.pending if self._confirmer is not None else None
        if pending is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(pending), self._open_timeout)
        await self._tool_calls.aclose()
        if self._connection is not None:
            await self._connection.close()
        if self._reader is not None:
            await self._reader
        if self._confirmer is not None:
            await self._confirmer.aclose()
        self._close_done = True
        self._finish()

    @property
    def closed(self) -> bool:
        """True once the socket is closed, by either side."""
        return self._closed

    @property
    def close_code(self) -> int | None:
        """The close frame's code once closed: 1000 normal, 1002, 1008, 1011 (docs/protocol.md
        §8)."""
        return self._close_code

    def add_close_callback(self, callback: Callable[[ConversationSession], None]) -> None:
        """Call `callback(session)` once, when the session closes (at once if it is closed)."""
        if self._finished:
            callback(self)
        else:
            self._close_callbacks.append(callback)

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- sending -------------------------------------------------------------------------
    async def send(self, event: ClientEvent) -> None:
        """Send a client event; returns once the server has it (unless `confirm=False`)."""
        batch = await self.write(event)
        if batch is not None:
            await confirmed(batch)

    async def send_contextual_update(self, text: str, *, context_id: str | None = None) -> None:
        """Add `text` to the agent's context without a reply.

        Args:
            text: the update.
            context_id: updates sharing it replace each other in the agent's context.
        """
        await self.send(ContextualUpdate(text=text, context_id=context_id))

    async def send_user_message(self, text: str) -> None:
        """Send `text` as if the user had said it: the agent answers it."""
        await self.send(UserMessage(text=text))

    async def send_tool_result(
        self, tool_call_id: str, result: Any, *, is_error: bool = False
    ) -> None:
        """Answer the agent's `client_tool_call` `tool_call_id`.

        Args:
            tool_call_id: the id of the agent's `client_tool_call`.
            result: the result; anything but a string is sent as JSON text.
            is_error: tell the agent the tool failed.
        """
        text = tool_result_text(result)
        await self.send(ClientToolResult(tool_call_id=tool_call_id, result=text, is_error=is_error))

    async def send_user_activity(self) -> None:
        """Tell the agent the user is active (it holds off interrupting)."""
        await self.send(UserActivity())

    async def write(self, event: ClientEvent) -> Batch | None:
        """Write `event` now; the batch whose result confirms it (None with `confirm=False`).

        The interface the `Sender` and the `RedisRouter` use (`send` awaits the confirmation
        too): the batch's result is None once the server has the message, else a callable
        building the error (see `_transport.Confirmer`). Raises `SessionClosed` when the socket
        cannot take it (`sent=True` when it dropped during the write). Writes leave in call
        order: websockets writes a whole message before its first await.
        """
        if self._closed or self._connection is None:
            raise SessionClosed(
                self.conversation_id, code=self._close_code, reason=self._close_reason
            )
        from websockets.exceptions import ConnectionClosed

        try:
            await self._connection.send(event.to_json())
        except ConnectionClosed as exc:
            raise self._drop_error(exc) from None
        if not self._confirm:
            return None
        assert self._confirmer is not None
        return self._confirmer.after_write()

    def _drop_error(self, exc: BaseException | None) -> SessionClosed:
        code, reason = close_info(self._connection) if self._connection else (None, "")
        return SessionClosed(self.conversation_id, code=code, reason=reason, sent=True)

    # -- receiving -----------------------------------------------------------------------
    async def events(self) -> AsyncIterator[ServerEvent]:
        """Server events as they come (pings included, already answered), until the close."""
        while True:
            while self._events:
                yield self._events.popleft()
            if self._reader is None or self._reader.done():
                return
            self._wakeup.clear()
            await self._wakeup.wait()

    def tool(self, name: str) -> Callable[[ToolHandler], ToolHandler]:
        """Decorator registering a client tool handler: `@session.tool("show_order")`."""

        def register(handler: ToolHandler) -> ToolHandler:
            self._tool_calls.handlers[name] = handler
            return handler

        return register

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        assert self._connection is not None
        try:
            async for raw in self._connection:
                event = parse_server_event(raw)
                if isinstance(event, Ping):
                    # Unconfirmed on purpose: a pong needs no ack, and the reader must not wait.
                    await self._connection.send(Pong(event_id=event.event_id).to_json())
                elif isinstance(event, ConversationInitiationMetadata):
                    self._on_metadata(event)
                elif isinstance(event, ClientToolCall) and self._tool_calls.handlers:
                    await self._tool_calls.take(event)
                self._buffer(event)
        except ConnectionClosed:
            pass  # the close frame (if any) is read below
        finally:
            self._close_code, self._close_reason = close_info(self._connection)
            # The server ended the conversation or the socket dropped: no more sends, and the
            # registry hears of it now. Unconfirmed writes fail through the confirmer's ping;
            # `close()` still has to be awaited to end tool handlers.
            self._closed = True
            self._started.set()
            self._wakeup.set()
            self._finish()

    def _buffer(self, event: ServerEvent) -> None:
        if len(self._events) == self._events.maxlen:
            self.events_dropped += 1
        self._events.append(event)
        self._wakeup.set()

    def _on_metadata(self, event: ConversationInitiationMetadata) -> None:
        # One socket is one conversation (docs/protocol.md §8): a second metadata naming another
        # id must not silently re-point this session (and the registry entries keyed by it).
        if self.conversation_id is not None and event.conversation_id != self.conversation_id:
            logger.warning(
                "conversation %s: ignored a second conversation_initiation_metadata naming %s",
                self.conversation_id,
                event.conversation_id,
            )
            return
        self.conversation_id, self.metadata = event.conversation_id, event
        self._started.set()

    async def _refuse_tool_call(self, refusal: ClientToolResult) -> None:
        # Unconfirmed, like a pong: the reader that hands calls in must not wait.
        assert self._connection is not None
        await self._connection.send(refusal.to_json())

    async def _answer_tool_call(self, call: ClientToolCall, answer: ClientToolResult) -> None:
        try:
            await self.send(answer)
        except SessionClosed:
            logger.warning(
                "client tool %s finished after conversation %s closed; result not sent",
                call.tool_name,
                self.conversation_id,
            )

    def _finish(self) -> None:
        self._finished = True
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                logger.exception("close callback of %r failed", self)
