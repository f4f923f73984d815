"""A real Redis of a test's own, on a free loopback port, that the test can kill and restart.

Fault tests use it instead of the shared Redis on 6379: killing that one would break every other
test running beside them. `persistent=True` turns on the append-only file (fsync on every write),
so a restart keeps what was written, as a production Redis with AOF would.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """`redis-server` on `127.0.0.1:<port>`; `kill()` is SIGKILL, `restart()` comes back on the
    same port (with the same data only when `persistent`)."""

    def __init__(self, *, persistent: bool = False, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.binary = binary
        self.persistent = persistent
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="redis-test-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        aof = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else []
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(self.dir), *(aof or ["--appendonly", "no"])],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._wait(up=True)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save; clients see their connections drop."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None
        self._wait(up=False)

    def restart(self) -> None:
        self.kill()
        self.start()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _wait(self, *, up: bool, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    answered = s.recv(16).startswith(b"+PONG")
            except OSError:
                answered = False
            if answered is up:
                return
            time.sleep(0.02)
        state = "up" if up else "down"
        raise RuntimeError(f"redis-server on port {self.port} did not come {state}")

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
