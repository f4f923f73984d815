"""In-process access: one httpx transport for both the sync and the async client, no sockets."""

from __future__ import annotations

import asyncio
import time

import httpx

from ._http import Dropped, Request, handle
from ._state import EmulatorState, HasState, state_of


class EmulatorTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Hands each request of an `Emulator` (or of its state) to the emulator's HTTP core.

    `latency` sleeps the way the caller's I/O would: `time.sleep` for `httpx.Client`,
    `asyncio.sleep` for `httpx.AsyncClient`, so concurrent async requests overlap as they
    would over a network. A dropped connection is the `httpx.RemoteProtocolError` httpx raises
    when a server hangs up mid-response.
    """

    def __init__(self, emulator: EmulatorState | HasState) -> None:
        self.state = state_of(emulator)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request of an `httpx.Client`."""
        with self.state.admission(request.url.path) as admitted:
            if self.state.settings.latency:
                time.sleep(self.state.settings.latency)
            return self._answer(request, request.read(), not admitted)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request of an `httpx.AsyncClient`."""
        with self.state.admission(request.url.path) as admitted:
            if self.state.settings.latency:
                await asyncio.sleep(self.state.settings.latency)
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
            reply = handle(self.state, incoming)
        except Dropped:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None
        return httpx.Response(reply.status, headers=reply.headers, content=reply.body)
