"""The emulator on a real loopback port: uvicorn in a background thread."""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode

from typing_extensions import Self

from ._asgi import ConnectionDropped
from ._emulator import Emulator

__all__ = ["EmulatorServer", "bind"]

# `callsid-resolver emulator -v` shows this log: one line per request.
request_logger = logging.getLogger("callsid_resolver.emulator")
# Query parameters a request log must not show (a signed URL's token: docs/protocol.md §5).
_HIDDEN_PARAMS = ("conversation_signature", "token")


class _QuietDrops(logging.Filter):
    """uvicorn logs every exception an app raises; a scripted hang-up is not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


class _RequestLog:
    """ASGI middleware logging each request's method, path, status and time at INFO."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or not request_logger.isEnabledFor(
            logging.INFO
        ):
            await self.app(scope, receive, send)
            return
        started, outcome = time.perf_counter(), "dropped"

        async def watch(message: Any) -> None:
            nonlocal outcome
            kind = message["type"]
            if kind == "http.response.start":
                outcome = str(message["status"])
            elif kind == "websocket.accept":
                outcome = "accepted"
            elif kind == "websocket.close":
                outcome = f"closed {message.get('code', 1000)}"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            method = scope.get("method", "WS")
            elapsed = (time.perf_counter() - started) * 1000
            request_logger.info("%s %s -> %s (%.1f ms)", method, _shown(scope), outcome, elapsed)


def _shown(scope: Any) -> str:
    query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    if not query:
        return str(scope["path"])
    safe = [(k, "***" if k in _HIDDEN_PARAMS else v) for k, v in query]
    return f"{scope['path']}?{urlencode(safe, safe='*')}"


class EmulatorServer:
    """Serves `emulator` (HTTP and WebSockets) on `host:port` until stopped; port 0 picks a free
    port, read it back from `port`, `base_url` or `ws_url` once started.

    ```python
    with EmulatorServer(Emulator(recording="default")) as server:
        client = ElevenLabsClient("any-key", base_url=server.base_url)
    ```
    """

    def __init__(self, emulator: Emulator, *, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self.emulator = emulator
        self.host = host
        self.port = port
        config = uvicorn.Config(
            _RequestLog(emulator.app),
            host=host,
            port=port,
            log_level="error",
            lifespan="off",
            ws="websockets-sansio",  # the legacy websockets implementation warns on import
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def base_url(self) -> str:
        """The HTTP URL to give a client (`ElevenLabsClient(base_url=...)`)."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """The WebSocket URL of the same server."""
        return f"ws://{self.host}:{self.port}"

    def start(self) -> Self:
        """Listen and serve in a background thread.

        Raises:
            OSError: the address cannot be bound (a busy port, an unknown host); raised here,
                before any thread starts, so the caller can say which port to change.
            RuntimeError: already started, or the server did not come up within 10 s.
        """
        if self._thread is not None:
            raise RuntimeError("this server was already started")
        logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
        # Binding here rather than in uvicorn's thread turns a busy port into an OSError for the
        # caller, instead of a log line and a thread that silently dies.
        self._socket = bind(self.host, self.port)
        self.port = self._socket.getsockname()[1]
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="elevenlabs-emulator",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the emulator could not start on {self.host}:{self.port}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C in the CLI)."""
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def __repr__(self) -> str:
        state = "serving" if self._thread is not None and self._thread.is_alive() else "stopped"
        return f"<EmulatorServer {self.base_url} {state}>"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket for the emulator, before uvicorn takes it."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    # The protocol must say TCP: asyncio turns Nagle's algorithm off only on sockets whose
    # `proto` is IPPROTO_TCP (accepted ones inherit the listener's), and `socket.create_server`
    # leaves it 0. With Nagle on, a reply written in two parts (headers, then body) waited for
    # the client's delayed ACK: about 40 ms on every keep-alive request.
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart right after a stop
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock
