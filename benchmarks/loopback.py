"""A lean loopback HTTP/1.1 server that replays recorded replies after a fixed latency.

The cold benchmark measures the client's rate. Served by the emulator (uvicorn on h11, Starlette,
the emulator's request handling), the server's CPU was the bound on this machine's two cores
before the client's was (docs/benchmarks.md, "Cold path"), so the ratio said more about the
emulator than about the client. This server answers each known request target with the bytes
the emulator answered it with (recorded beforehand through the client's public `transport`
seam), after `latency` seconds of non-blocking delay, from a parser that does nothing but find
the request line and the header block's end. Anything it does not know is a 404.

It runs in a process of its own (`LoopbackServer`), so it never shares the benchmark's
interpreter or event loop. `GET /_loopback/requests` answers the number of requests served since
the previous such call, for the request-count checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote_to_bytes

import httpx
from typing_extensions import Self

COUNT_PATH = b"/_loopback/requests"
# The reply headers kept from a recording; the rest (date, server) vary per reply or name the
# emulator's stack, and the length is recomputed.
KEPT_HEADERS = ("content-type", "request-id", "x-trace-id")
NOT_FOUND = b'{"detail":"not recorded"}'


class Recorder(httpx.AsyncBaseTransport):
    """Wraps a transport and keeps every reply by request target (path and query), to replay."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.replies: dict[str, tuple[int, dict[str, str], str]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the wrapped transport; keep the reply's status, headers and body."""
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        kept = {k: v for k, v in response.headers.items() if k.lower() in KEPT_HEADERS}
        self.replies[request.url.raw_path.decode("ascii")] = (
            response.status_code,
            kept,
            body.decode("utf-8"),
        )
        return httpx.Response(response.status_code, headers=response.headers, content=body)

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self.inner.aclose()


def _reply_bytes(status: int, headers: dict[str, str], body: bytes) -> bytes:
    head = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head.append(f"content-length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class _Replay(asyncio.Protocol):
    """One connection: requests are GETs without a body (all this scenario sends), answered in
    order, each `latency` seconds after it arrived."""

    def __init__(self, server: _Served) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            target = head.split(b" ", 2)[1]
            self.server.respond(self, target)

    def send(self, reply: bytes) -> None:
        if self.transport is not None:
            self.transport.write(reply)


class _Served:
    def __init__(self, replies: dict[bytes, bytes], latency: float) -> None:
        self.replies = replies
        self.latency = latency
        self.count = 0
        self.not_found = _reply_bytes(404, {"content-type": "application/json"}, NOT_FOUND)

    def respond(self, connection: _Replay, target: bytes) -> None:
        if target == COUNT_PATH:
            body = str(self.count).encode()
            self.count = 0
            connection.send(_reply_bytes(200, {"content-type": "text/plain"}, body))
            return
        self.count += 1
        reply = self.replies.get(target) or self.replies.get(_plain(target), self.not_found)
        if self.latency:
            asyncio.get_running_loop().call_later(self.latency, connection.send, reply)
        else:
            connection.send(reply)


def _plain(target: bytes) -> bytes:
    """The target with its percent-escapes decoded: backends escape a query's `:` differently."""
    return unquote_to_bytes(target)


async def _serve(saved: dict[str, list[Any]], latency: float) -> None:
    replies = {
        _plain(target.encode("ascii")): _reply_bytes(status, headers, body.encode("utf-8"))
        for target, (status, headers, body) in saved.items()
    }
    served = _Served(replies, latency)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Replay(served), "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"loopback on http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


class LoopbackServer:
    """The replay server in a child process, on a free loopback port.

    ```python
    with LoopbackServer(recorder.replies, latency=0.05) as server:
        client = AsyncElevenLabsClient("key", base_url=server.base_url)
    ```
    """

    def __init__(
        self, replies: dict[str, tuple[int, dict[str, str], str]], *, latency: float
    ) -> None:
        self._replies = replies
        self._latency = latency
        self._process: subprocess.Popen[str] | None = None
        self._table: Path | None = None
        self.base_url = ""

    def __enter__(self) -> Self:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(self._replies, f)
        self._table = Path(f.name)
        args = [sys.executable, "-m", "benchmarks.loopback", str(self._table), str(self._latency)]
        # Our own interpreter and arguments: nothing untrusted reaches the command line.
        self._process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)  # noqa: S603
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if " on http" not in line:
            self.__exit__(None, None, None)
            raise RuntimeError(f"the loopback server did not start: {line.strip()!r}")
        self.base_url = line.split(" on ", 1)[1].strip()
        return self

    def take_count(self) -> int:
        """Requests served since the previous call (the count is reset)."""
        return int(httpx.get(self.base_url + COUNT_PATH.decode()).text)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None
        if self._table is not None:
            self._table.unlink(missing_ok=True)
            self._table = None


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # a terminal's Ctrl-C: a quiet stop
        asyncio.run(_serve(json.loads(Path(sys.argv[1]).read_text()), float(sys.argv[2])))
