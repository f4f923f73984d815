"""Fixtures of the live suite: the emulator on loopback, a client on it, a Redis key prefix of
the test's own, a TCP proxy that can cut a connection, and a way to act on the server side."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from callsid_resolver import AsyncCallSidResolver, AsyncElevenLabsClient
from callsid_resolver.testing import Emulator, EmulatorServer, Session

T = TypeVar("T")
KEY = "test-key"
AGENT = "agent_fake0example0agent0000000001"
LIVE_SID = "CAdeadbeef000000000000000000000001"
LIVE_CONVERSATION = "conv_fake0inbound0live00000000001"
DONE_SID = "CAdeadbeef00000000000000000000beef"
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def emulator() -> Emulator:
    emu = Emulator(recording="default")
    emu.ping_interval = 0.05
    return emu


@pytest.fixture
def server(emulator: Emulator) -> Iterator[EmulatorServer]:
    with EmulatorServer(emulator) as running:
        yield running


@pytest.fixture
async def client(server: EmulatorServer) -> AsyncIterator[AsyncElevenLabsClient]:
    async with AsyncElevenLabsClient(KEY, base_url=server.base_url) as c:
        yield c


@pytest.fixture
def resolver(client: AsyncElevenLabsClient) -> AsyncCallSidResolver:
    return AsyncCallSidResolver(client)


@pytest.fixture
def key_prefix(namespace: str) -> str:
    """A Redis key prefix of this test's own (the suite's `namespace`, cleaned up afterwards)."""
    return namespace


async def on_server(
    emulator: Emulator, conversation_id: str, make: Callable[[Session], Coroutine[Any, Any, T]]
) -> T:
    """Run `make(session)` on the emulator's event loop (uvicorn's thread), from a test."""
    session = emulator.sessions[conversation_id]
    assert session.loop is not None
    future = asyncio.run_coroutine_threadsafe(make(session), session.loop)
    return await asyncio.wrap_future(future)


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until the server side (another thread) has caught up."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


class CuttableProxy:
    """A TCP proxy to the emulator whose connections a test can cut mid-stream (no close frame)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.close()

    def cut(self) -> None:
        """Abort every connection: both ends see a reset, nothing more is forwarded."""
        for writer in self._writers:
            writer.transport.abort()

    async def aclose(self) -> None:
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def proxy(server: EmulatorServer) -> AsyncIterator[CuttableProxy]:
    p = CuttableProxy(server.port)
    await p.start()
    yield p
    await p.aclose()
