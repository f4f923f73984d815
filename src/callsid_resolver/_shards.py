"""The async client's default transport: httpx's pool split into small pools.

httpcore's pool rescans every connection, and for each idle one every connection again, whenever a
request enters or leaves it, polling idle sockets as it goes: the cost per request grows with the
square of the pool's size, and at 100 connections the client spent its time there instead of
sending (issue #16). Small pools keep the scan short; each request goes to the least busy one.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import httpx

__all__ = ["PER_SHARD", "ShardedTransport"]

# Connections per small pool: 1-2 measured alike; 5 already lost a third at pool 100.
PER_SHARD = 2


class _Shard:
    __slots__ = ("busy", "transport")

    def __init__(self, size: int, limits: httpx.Limits, tls: ssl.SSLContext) -> None:
        self.busy = 0
        self.transport = httpx.AsyncHTTPTransport(
            verify=tls,
            limits=httpx.Limits(
                max_connections=size,
                max_keepalive_connections=size,
                keepalive_expiry=limits.keepalive_expiry,
            ),
        )


class _Released(httpx.AsyncByteStream):
    """The response body; closing it gives its shard's slot back (once)."""

    def __init__(self, stream: httpx.AsyncByteStream, shard: _Shard) -> None:
        self._stream = stream
        self._shard: _Shard | None = shard

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        if self._shard is not None:
            self._shard.busy -= 1
            self._shard = None
        await self._stream.aclose()


class ShardedTransport(httpx.AsyncBaseTransport):
    """`limits.max_connections` connections in pools of `PER_SHARD`, for one event loop."""

    def __init__(self, limits: httpx.Limits) -> None:
        total = limits.max_connections
        if total is None or total < 1:
            raise ValueError("a sharded pool needs a finite max_connections")
        count = -(-total // PER_SHARD)
        sizes = [total // count + (1 if i < total % count else 0) for i in range(count)]
        # One TLS context for all: each transport would otherwise load the CA bundle again, about
        # 50 ms apiece, which made a client with a pool of 100 take seconds to build.
        tls = httpx.create_ssl_context()
        self._shards = [_Shard(size, limits, tls) for size in sizes]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        shard = min(self._shards, key=_busy)
        shard.busy += 1
        try:
            response = await shard.transport.handle_async_request(request)
        except BaseException:
            shard.busy -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Released(response.stream, shard)
        return response

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.transport.aclose()


def _busy(shard: _Shard) -> int:
    return shard.busy
