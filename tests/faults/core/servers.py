"""A raw HTTP/1.1 server on loopback that misbehaves on purpose: each connection is handed to a
script (a function of the socket and the request head), run in a thread of its own."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

Script = Callable[["Connection"], None]


class Connection:
    """One accepted connection: the request head read, helpers to answer slowly or badly."""

    def __init__(self, sock: socket.socket, stop: threading.Event) -> None:
        self.sock = sock
        self.stop = stop
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        self.head = data.partition(b"\r\n\r\n")[0].decode("latin-1")

    @property
    def target(self) -> str:
        """The request target as sent (`/v1/convai/conversations/a%3Fb`)."""
        return self.head.split(" ", 2)[1] if " " in self.head else ""

    def header(self, name: str) -> str | None:
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send(
            f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )

    def json(self, status: int, body: object) -> None:
        self.answer(status, json.dumps(body).encode())

    def trickle(self, body_length: int, every: float) -> None:
        """A 200 whose body comes one byte per `every` seconds, until the client hangs up."""
        self.send(f"HTTP/1.1 200 OK\r\ncontent-length: {body_length}\r\n\r\n".encode())
        for _ in range(body_length):
            if self.stop.wait(every):
                return
            self.send(b" ")


class FaultServer:
    """`with FaultServer(script) as server:` then `server.url`; `server.targets` lists what was
    requested, `server.connections` counts connections."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.stop = threading.Event()
        self.targets: list[str] = []
        self.heads: list[str] = []
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._handle, args=(sock,), daemon=True).start()

    def _handle(self, sock: socket.socket) -> None:
        with sock:
            try:
                conn = Connection(sock, self.stop)
                self.targets.append(conn.target)
                self.heads.append(conn.head)
                self.script(conn)
                time.sleep(0.05)
            except OSError:
                pass  # the client hung up: that is the point of most scripts

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop.set()
        self._thread.join(2)
        self._listener.close()
