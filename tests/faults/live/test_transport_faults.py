"""Hostile WebSocket peers on loopback: a redirect to another origin must not receive the API
key, and a server that stops reading must not hold a send past its timeout (issue #15, items 4
and 9), nor must a frame nested 200,000 deep end a session (item 10)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request, Response

from callsid_resolver import (
    AsyncElevenLabsClient,
    ConfirmTimeout,
    MonitorRefused,
    NotLive,
    SessionClosed,
)
from callsid_resolver.live import (
    ConversationSession,
    MonitorChannel,
    Sender,
    SessionRegistry,
    UnknownEvent,
    _transport,
)
from callsid_resolver.live._transport import Confirmer, open_socket

KEY = "sk_fault_0000000000000000000000000000000000000001"
CONVERSATION = "conv_fault0redirect000000000001"


class Recorder:
    """A WebSocket server that records the headers of every handshake it gets."""

    def __init__(self) -> None:
        self.handshakes: list[Headers] = []

    def process_request(self, connection: ServerConnection, request: Request) -> None:
        self.handshakes.append(request.headers)


async def _echo(connection: ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


def _redirect_to(location: Callable[[], str]) -> Callable[[ServerConnection, Request], Response]:
    def answer(connection: ServerConnection, request: Request) -> Response:
        response = connection.respond(HTTPStatus.FOUND, "moved\n")
        response.headers["Location"] = location()
        return response

    return answer


@pytest.fixture
async def elsewhere() -> AsyncIterator[tuple[Server, Recorder]]:
    """Another origin: the same host on another port, recording what it is sent."""
    recorder = Recorder()
    async with serve(_echo, "127.0.0.1", 0, process_request=recorder.process_request) as s:
        yield s, recorder


def _port(server: Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def test_a_cross_origin_redirect_is_not_followed_with_the_key(
    elsewhere: tuple[Server, Recorder],
) -> None:
    target, recorder = elsewhere
    to = f"ws://127.0.0.1:{_port(target)}/v1/convai/conversations/{CONVERSATION}/monitor"
    async with serve(_echo, "127.0.0.1", 0, process_request=_redirect_to(lambda: to)) as origin:
        url = f"ws://127.0.0.1:{_port(origin)}/v1/convai/conversations/{CONVERSATION}/monitor"
        with pytest.raises(InvalidStatus) as info:
            await open_socket(url, headers={"xi-api-key": KEY}, open_timeout=2)
        assert info.value.response.status_code == 302
        # Through the monitor channel the 302 is a refusal the Sender falls back from.
        base = f"http://127.0.0.1:{_port(origin)}"
        async with AsyncElevenLabsClient(KEY, base_url=base) as api:
            monitor = MonitorChannel(api, settle=0.05, open_timeout=2)
            with pytest.raises(MonitorRefused) as refused:
                await monitor.contextual_update("hi", conversation_id=CONVERSATION)
            assert refused.value.status_code == 302
            with pytest.raises(NotLive) as not_live:
                await Sender(monitor=monitor).send_contextual_update(
                    "hi", conversation_id=CONVERSATION
                )
            assert "HTTP 302" in not_live.value.reasons["monitor"]
            await monitor.aclose()
    assert recorder.handshakes == []  # the other origin never heard from us, key or not
    assert KEY not in str(info.value) + str(refused.value) + str(not_live.value)


async def test_a_same_origin_redirect_is_followed(elsewhere: tuple[Server, Recorder]) -> None:
    recorder = Recorder()

    def route(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/old":
            return _redirect_to(lambda: "/new")(connection, request)
        recorder.process_request(connection, request)
        return None

    async with serve(_echo, "127.0.0.1", 0, process_request=route) as origin:
        url = f"ws://127.0.0.1:{_port(origin)}/old"
        connection = await open_socket(url, headers={"xi-api-key": KEY}, open_timeout=2)
        await connection.send("ping?")
        assert await connection.recv() == "ping?"
        await connection.close()
    assert [h["xi-api-key"] for h in recorder.handshakes] == [KEY]


class Deaf:
    """An Agents-socket server that answers the initiation, then stops reading: its TCP
    receive window fills and no pong ever comes back."""

    def __init__(self) -> None:
        self.connections: list[ServerConnection] = []

    async def handler(self, connection: ServerConnection) -> None:
        await connection.recv()  # conversation_initiation_client_data
        metadata = {"conversation_id": "conv_fault0deaf0000000000000001"}
        await connection.send(
            json.dumps(
                {
                    "type": "conversation_initiation_metadata",
                    "conversation_initiation_metadata_event": metadata,
                }
            )
        )
        connection.transport.pause_reading()  # the peer stops reading, socket left open
        self.connections.append(connection)
        await connection.wait_closed()

    @staticmethod
    def listening_socket() -> socket.socket:
        """A small receive buffer, set before listening (accepted sockets inherit it): no
        autotuning to tens of megabytes on loopback, so a writer's buffers fill soon."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        sock.bind(("127.0.0.1", 0))
        return sock

    def hang_up(self) -> None:
        for connection in self.connections:  # a deaf server never sees our close: let it go
            connection.transport.abort()


async def test_a_send_to_a_server_that_stopped_reading_fails_within_the_send_timeout() -> None:
    deaf = Deaf()
    # No keepalive on the server side: it would answer nothing anyway.
    async with serve(deaf.handler, "127.0.0.1", 0, ping_interval=None) as srv:
        url = f"ws://127.0.0.1:{_port(srv)}/v1/convai/conversation?agent_id=agent_x"
        session = await ConversationSession(url=url, open_timeout=2).open()
        registry = SessionRegistry()
        await registry.register(session, call_sid="CA" + "de" * 16)
        sender = Sender(registry=registry, send_timeout=2)
        started = time.monotonic()
        with pytest.raises(ConfirmTimeout) as info:
            await sender.send_contextual_update("still there?", call_sid="CA" + "de" * 16)
        elapsed = time.monotonic() - started
        assert 1.9 <= elapsed < 3.0, elapsed
        assert info.value.sent
        assert info.value.channel == "session"
        assert "may or may not have arrived" in str(info.value)
        await sender.aclose()
        deaf.hang_up()
        await asyncio.wait_for(session.close(), 5)


async def test_the_confirmer_gives_up_on_a_deaf_server_and_drops_the_socket() -> None:
    deaf = Deaf()
    async with serve(deaf.handler, "127.0.0.1", 0, ping_interval=None) as srv:
        connection = await open_socket(f"ws://127.0.0.1:{_port(srv)}/", open_timeout=2)
        await connection.send("{}")
        await connection.recv()  # the metadata: the server reads nothing from here on
        causes: list[BaseException | None] = []

        def failure_of(exc: BaseException | None) -> BaseException:
            causes.append(exc)
            return RuntimeError("dropped")

        confirmer = Confirmer(connection, failure_of, timeout=0.5)
        started = time.monotonic()
        await connection.send("unread")
        failure = await asyncio.wait_for(confirmer.after_write(), 5)
        assert 0.45 <= time.monotonic() - started < 1.5
        assert failure is not None
        assert isinstance(failure(), RuntimeError)
        assert isinstance(causes[0], TimeoutError)
        await asyncio.wait_for(connection.wait_closed(), 2)  # aborted: the reader sees a drop
        await confirmer.aclose()
        deaf.hang_up()


async def test_a_frame_nested_200000_deep_does_not_end_the_session() -> None:
    async def nesting(connection: ServerConnection) -> None:
        await connection.recv()
        metadata = {"conversation_id": "conv_fault0nested000000000001"}
        event = {"type": "conversation_initiation_metadata"}
        await connection.send(json.dumps(event | {f"{event['type']}_event": metadata}))
        await connection.send("[" * 200_000 + "]" * 200_000)
        await connection.send(
            '{"type":"agent_response","agent_response_event":{"agent_response":"ok"}}'
        )
        await connection.wait_closed()

    async with serve(nesting, "127.0.0.1", 0, ping_interval=None) as srv:
        url = f"ws://127.0.0.1:{_port(srv)}/v1/convai/conversation?agent_id=agent_x"
        async with ConversationSession(url=url, open_timeout=2) as session:
            seen: list[Any] = []
            async for event in session.events():
                seen.append(event)
                if event.type == "agent_response":
                    break
            types = [type(e).__name__ for e in seen]
            assert types == ["ConversationInitiationMetadata", "UnknownEvent", "AgentResponse"]
            assert isinstance(seen[1], UnknownEvent)
            assert seen[1].type == ""
            assert not session.closed
        # `close()` (the context exit) raised nothing: the reader survived the frame.


SECRETS = {
    "signature": "s3cr3t-sig-value",
    "sig": "another-s3cr3t",
    "xi_api_key": "sk_in_the_query_0000000000000",
    "conversation%5Fsignature": "encoded-name-s3cr3t",
}


async def test_debug_logs_show_only_allowlisted_query_values_and_headers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    query = "&".join(f"{k}={v}" for k, v in SECRETS.items())
    async with serve(_echo, "127.0.0.1", 0) as srv:
        url = f"ws://127.0.0.1:{_port(srv)}/v1/convai/conversation?agent_id=agent_shown&{query}"
        with caplog.at_level(logging.DEBUG, logger="callsid_resolver.live"):
            connection = await open_socket(
                url, headers={"xi-api-key": KEY, "X-Custom-Token": "tok-s3cr3t"}, open_timeout=2
            )
            await connection.close()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "> GET /v1/convai/conversation?agent_id=agent_shown&signature=***" in text
    for secret in [*SECRETS.values(), KEY, "tok-s3cr3t"]:
        assert secret not in text
    assert "> Host: 127.0.0.1" in text  # allowlisted headers stay readable


async def test_a_write_stuck_behind_a_full_buffer_drops_the_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_transport, "WRITE_TIMEOUT", 1.0)
    deaf = Deaf()

    async def flood(session: ConversationSession) -> None:
        # Megabytes that do not compress (permessage-deflate is on): the socket buffers fill
        # and a write itself waits for the reader. Unconfirmed, only the write timeout notices.
        for _ in range(64):
            await session.send_contextual_update(base64.b64encode(os.urandom(750_000)).decode())

    async with serve(deaf.handler, sock=deaf.listening_socket(), ping_interval=None) as srv:
        url = f"ws://127.0.0.1:{_port(srv)}/v1/convai/conversation?agent_id=agent_x"
        session = await ConversationSession(url=url, open_timeout=2, confirm=False).open()
        own = session._connection.transport.get_extra_info("socket")  # type: ignore[union-attr]
        own.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
        started = time.monotonic()
        with pytest.raises(SessionClosed) as info:
            await flood(session)
        assert 0.9 <= time.monotonic() - started < 4
        assert info.value.sent
        await asyncio.wait_for(session.close(), 5)
        deaf.hang_up()
