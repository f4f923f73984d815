"""The sync client's hard bound on an attempt: httpx has no total timeout, only per-read ones,
so a server that trickles a byte at a time would hold a blocking call indefinitely."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import httpx


class Watchdog:
    """Shuts the socket of an attempt when the deadline passes, which ends a read blocked on a
    server that trickles or stalls (headers or body); the read then fails as a transport fault.

    The socket is learnt when the connection is made (httpcore's `trace` extension) or, for a
    pooled connection, once the response headers are in. Without one (a mock transport, HTTP/2)
    the reads are bounded by their timeouts, which are never longer than the time left.
    """

    _EVENTS = frozenset({"connection.connect_tcp.complete", "connection.start_tls.complete"})

    def __init__(self, seconds: float) -> None:
        self._stream: Any = None
        self._lock = threading.Lock()
        self._cancelled = False
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event in self._EVENTS:
            self._stream = info.get("return_value")

    def watch(self, response: httpx.Response) -> None:
        self._stream = response.extensions.get("network_stream", self._stream)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
        self._timer.cancel()

    def _fire(self) -> None:
        with self._lock:
            if self._cancelled or self._stream is None:
                return
            sock = self._stream.get_extra_info("socket")
            if isinstance(sock, socket.socket):
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    # The base class's shutdown, also for TLS: it wakes the reader without touching the TLS
    # state that the reading thread is using. OSError: already closed, the read is over anyway.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
