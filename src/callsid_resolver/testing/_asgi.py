"""The emulator as an ASGI application: HTTP for `httpx.ASGITransport` and real servers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from ._emulator import Dropped, Emulator

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def create_app(emulator: Emulator) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] == "websocket":
            await _websocket(emulator, scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if emulator.latency:
            await asyncio.sleep(emulator.latency)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        host = headers.get("host", "127.0.0.1")
        params = parse_qsl(scope["query_string"].decode(), keep_blank_values=True)
        try:
            reply = emulator.handle(
                scope["method"], scope["path"], params, headers, body, ws_base=f"ws://{host}"
            )
        except Dropped:
            # A response that starts and never finishes: the server closes the connection
            # mid-response, which is what a client sees when a proxy or the API drops it.
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"100")]})  # fmt: skip
            raise ConnectionAbortedError("emulator dropped the connection") from None
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [(k.encode(), v.encode()) for k, v in reply.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})

    return app


async def _websocket(emulator: Emulator, scope: Scope, receive: Receive, send: Send) -> None:
    from ._sockets import serve_socket

    await serve_socket(emulator, scope, receive, send)
