"""In-process access: an httpx transport for both the sync and the async client, no sockets."""

from __future__ import annotations

import asyncio
import time

import httpx

from ._emulator import Dropped, Emulator, Reply


class EmulatorTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Hands each request to the emulator; `latency` sleeps the way the caller's I/O does."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.emulator.latency:
            time.sleep(self.emulator.latency)
        return self._answer(request, request.read())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.emulator.latency:
            await asyncio.sleep(self.emulator.latency)
        return self._answer(request, await request.aread())

    def _answer(self, request: httpx.Request, body: bytes) -> httpx.Response:
        try:
            reply: Reply = self.emulator.handle(
                request.method,
                request.url.path,
                list(request.url.params.multi_items()),
                request.headers,
                body,
            )
        except Dropped:
            raise httpx.RemoteProtocolError("Server disconnected", request=request) from None
        return httpx.Response(reply.status, headers=reply.headers, content=reply.body)
