"""The emulator on a real loopback port: uvicorn in a background thread."""

from __future__ import annotations

import threading
import time
from types import TracebackType

from typing_extensions import Self

from ._emulator import Emulator


class EmulatorServer:
    """Serves `emulator` on `host:port` (0 picks a free port) until stopped.

    ```python
    with EmulatorServer(Emulator(recording="default")) as server:
        client = ElevenLabsClient("any-key", base_url=server.base_url)
    ```
    """

    def __init__(self, emulator: Emulator, *, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self.emulator = emulator
        self.host = host
        config = uvicorn.Config(
            emulator.app,
            host=host,
            port=port,
            log_level="error",
            lifespan="off",
            ws="websockets-sansio",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name="elevenlabs-emulator", daemon=True
        )
        self.port = port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the emulator could not start on {self.host}:{self.port}")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C in the CLI)."""
        try:
            while self._thread.is_alive():
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
