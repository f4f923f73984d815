"""The sync client's hard bound on an attempt: httpx has no total timeout, only per-read ones,
so a server that trickles a byte at a time would hold a blocking call indefinitely.

One long-lived daemon thread serves every attempt of the process from a heap of deadlines: a
`threading.Timer` per attempt cost a thread start and join, 0.3-0.8 ms per loopback GET.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from typing import Any

import httpx

__all__ = ["Watchdog"]

# One lock for the heap and every watchdog's state: `cancel` and the firing thread must agree
# on whether a socket may still be shut, and both hold it for microseconds only.
_lock = threading.Lock()
_wake = threading.Condition(_lock)
_heap: list[tuple[float, int, Watchdog]] = []
_order = itertools.count()  # ties on the deadline must never compare two `Watchdog`s
_thread: threading.Thread | None = None


class Watchdog:
    """Shuts the socket of an attempt when the deadline passes, which ends a read blocked on a
    server that trickles or stalls (headers or body); the read then fails as a transport fault.

    The socket is learnt when the connection is made (httpcore's `trace` extension) or, for a
    pooled connection, once the response headers are in. Without one (a mock transport, HTTP/2)
    the reads are bounded by their timeouts, which are never longer than the time left.
    """

    __slots__ = ("_cancelled", "_stream")

    _EVENTS = frozenset({"connection.connect_tcp.complete", "connection.start_tls.complete"})

    def __init__(self, seconds: float) -> None:
        self._stream: Any = None
        self._cancelled = False
        _schedule(self, time.monotonic() + max(seconds, 0.0))

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event in self._EVENTS:
            self._stream = info.get("return_value")

    def watch(self, response: httpx.Response) -> None:
        self._stream = response.extensions.get("network_stream", self._stream)

    def cancel(self) -> None:
        """After this returns, the socket is never shut: the connection may go back to the pool.
        The entry stays in the heap until its time (or until it reaches the top) and is skipped."""
        with _lock:
            self._cancelled = True
            self._stream = None  # the heap may hold this entry for the rest of the deadline
            while _heap and _heap[0][2]._cancelled:
                heapq.heappop(_heap)

    def _fire(self) -> None:  # called with `_lock` held
        if self._cancelled or self._stream is None:
            return
        sock = self._stream.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            _shut(sock)


def _schedule(watchdog: Watchdog, at: float) -> None:
    global _thread
    with _lock:
        heapq.heappush(_heap, (at, next(_order), watchdog))
        if _thread is None:
            _thread = threading.Thread(target=_run, name="callsid-watchdog", daemon=True)
            _thread.start()
        elif _heap[0][2] is watchdog:
            _wake.notify()  # an earlier deadline than the one the thread sleeps towards


def _run() -> None:
    with _lock:
        while True:
            if not _heap:
                _wake.wait()
                continue
            at, _, first = _heap[0]
            left = at - time.monotonic()
            if left > 0 and not first._cancelled:
                _wake.wait(left)
                continue
            heapq.heappop(_heap)
            first._fire()


def _forget_thread() -> None:
    # A forked child has the parent's heap but not its thread: start afresh.
    global _thread, _lock, _wake
    _thread = None
    _heap.clear()
    _lock = threading.Lock()
    _wake = threading.Condition(_lock)


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_forget_thread)


def _shut(sock: socket.socket) -> None:
    # The base class's shutdown, also for TLS: it wakes the reader without touching the TLS
    # state that the reading thread is using. OSError: already closed, the read is over anyway.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
