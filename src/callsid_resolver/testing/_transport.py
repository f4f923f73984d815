"""In-process access: one httpx transport for both the sync and the async client, no sockets."""

from __future__ import annotations

import asyncio
import time

import httpx

from ._http import Answering, Dropped, Request

__all__ = ["EmulatorTransport"]


class EmulatorTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Hands each request to an `Emulator` (its `admission`, `latency` and `handle`).

    `latency` sleeps the way the caller's I/O would: `time.sleep` for `httpx.Client`,
    `asyncio.sleep` for `httpx.AsyncClient`, so concurrent async requests overlap as they
    would over a network. A dropped connection is the `httpx.RemoteProtocolError` httpx raises
    when a server hangs up mid-response.
    """

    def __init__(self, emulator: Answering) -> None:
        self.emulator = emulator

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request of an `httpx.Client`."""
        with self.emulator.admission(request.url.path) as admitted:
            if self.emulator.latency:
                time.sleep(self.emulator.latency)
            return self._answer(request, request.read(), not admitted)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request of an `httpx.AsyncClient`."""
        with self.emulator.admission(request.url.path) as admitted:
            if self.emulator.latency:
                await asyncio.sleep(self.emulator.latency)
            return self._answer(request, await request.aread(), not admitted)

    def _answer(self, request: httpx.Request, body: bytes, over_limit: bool) -> httpx.Response:
        incoming = Request(
            method=request.method,
            path=request.url.path,
            params=list(request.url.params.multi_items()),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            over_limit=over_limit,
        )
        try:
            reply = self.emulator.handle(incoming)
        except Dropped:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None
        return httpx.Response(reply.status, headers=reply.headers, content=reply.body)
