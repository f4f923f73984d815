"""The emulator as an ASGI (Starlette) application: HTTP and the two WebSockets.

HTTP requests all go to the framework-free core (`_http`), so the in-process transport and a
served emulator answer identically; Starlette routes the WebSockets (`_websockets`).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Protocol
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from ._http import Answering, Dropped, Reply, Request
from ._state import HasState
from ._websockets import agent_socket, monitor_socket

__all__ = ["ConnectionDropped", "Served", "create_app"]


class ConnectionDropped(httpx.RemoteProtocolError):
    """Raised by the app to hang up mid-response (`inject(drop=True)`).

    A server closes the connection on it, so a client sees what a dropped connection looks like;
    `httpx.ASGITransport` re-raises app errors as they are, and being an `httpx.TransportError`
    this one reaches the client as the same kind of error as over a socket.
    """


class Served(Answering, HasState, Protocol):
    """What the app serves (the `Emulator` is one): HTTP answers and, for the sockets, the
    state."""


class _HttpEndpoint:
    """Raw ASGI, so the status, headers and body are exactly the core's."""

    def __init__(self, emulator: Answering) -> None:
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        # In flight, for the emulator's `concurrency_limit`, until the reply is sent.
        with self.emulator.admission(scope["path"]) as admitted:
            reply = await self._reply(scope, body, send, over_limit=not admitted)
            headers = [(k.encode(), v.encode()) for k, v in reply.headers.items()]
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            await send({"type": "http.response.body", "body": reply.body})

    async def _reply(self, scope: Scope, body: bytes, send: Send, *, over_limit: bool) -> Reply:
        if self.emulator.latency:
            await asyncio.sleep(self.emulator.latency)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "127.0.0.1")
        request = Request(
            method=scope["method"],
            path=scope["path"],
            params=parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True),
            headers=headers,
            body=body,
            over_limit=over_limit,
            ws_base=f"{'wss' if scope.get('scheme') == 'https' else 'ws'}://{host}",
        )
        try:
            reply = self.emulator.handle(request)
        except Dropped:
            # Promise a body and never send it: the server then closes the connection.
            start = {"type": "http.response.start", "status": 200}
            await send(start | {"headers": [(b"content-length", b"64")]})
            raise ConnectionDropped("the emulator dropped the connection") from None
        return reply


def create_app(emulator: Served) -> Starlette:
    """The Starlette application serving one emulator: HTTP through its `handle`, the sockets
    on its state."""
    state = emulator.state
    return Starlette(
        routes=[
            WebSocketRoute("/v1/convai/conversation", functools.partial(agent_socket, state)),
            WebSocketRoute(
                "/v1/convai/conversations/{conversation_id}/monitor",
                functools.partial(monitor_socket, state),
            ),
            Route("/{path:path}", _HttpEndpoint(emulator)),
        ]
    )
