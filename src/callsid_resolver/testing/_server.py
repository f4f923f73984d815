"""The emulator on a real loopback port: uvicorn in a background thread."""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

from typing_extensions import Self

from ._emulator import Emulator


class _QuietDrops(logging.Filter):
    """uvicorn logs every exception an app raises; a scripted hang-up is not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        from ._asgi import ConnectionDropped

        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


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
            emulator.app,
            host=host,
            port=port,
            log_level="error",
            lifespan="off",
            ws="websockets-sansio",  # the legacy websockets implementation warns on import
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("this server was already started")
        logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
        self._thread = threading.Thread(
            target=self._server.run, name="elevenlabs-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the emulator could not start on {self.host}:{self.port}")
            time.sleep(0.005)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C in the CLI)."""
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
