"""`MonitorChannel` against the emulator's monitoring socket."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator

import pytest

from callsid_resolver import (
    AsyncCallSidResolver,
    AsyncElevenLabsClient,
    ConversationNotFound,
    ConversationNotStarted,
    ConversationOver,
    MonitoringDisabled,
    MonitorPlanRequired,
    MonitorRefused,
    MonitorRoleMissing,
    MonitorScopeMissing,
    MonitorUnavailable,
    SessionOpenFailed,
)
from callsid_resolver.live import (
    AgentResponse,
    ConversationSession,
    MonitorChannel,
    MonitorStats,
    ServerEvent,
)
from callsid_resolver.testing import Emulator, EmulatorServer

from .conftest import AGENT, KEY, LIVE_CONVERSATION, LIVE_SID, eventually

CONTEXT = {"command_type": "contextual_update", "parameters": {"contextual_update": "VIP caller"}}


@pytest.fixture
async def monitor(
    client: AsyncElevenLabsClient, resolver: AsyncCallSidResolver
) -> AsyncIterator[MonitorChannel]:
    async with MonitorChannel(client, resolver=resolver, settle=0.05) as channel:
        yield channel


async def test_contextual_update_by_call_sid(monitor: MonitorChannel, emulator: Emulator) -> None:
    cid = await monitor.contextual_update("VIP caller", call_sid=LIVE_SID)
    assert cid == LIVE_CONVERSATION
    assert emulator.requests.of("monitor_ws")[0].params == [("events_format", "json")]
    # Confirmed means the server's WebSocket layer has it; the emulator records it just after.
    await eventually(lambda: emulator.monitor_commands.get(cid) == [CONTEXT])


async def test_one_socket_per_conversation_is_reused(
    monitor: MonitorChannel, emulator: Emulator
) -> None:
    await asyncio.gather(
        *(monitor.contextual_update(f"u{i}", conversation_id=LIVE_CONVERSATION) for i in range(50))
    )
    await monitor.contextual_update("last", conversation_id=LIVE_CONVERSATION)
    assert emulator.count("monitor_ws") == 1

    def texts() -> list[str]:
        commands = emulator.monitor_commands[LIVE_CONVERSATION]
        return [c["parameters"]["contextual_update"] for c in commands]

    # Confirmed means the server's WebSocket layer has it; the emulator records it just after.
    await eventually(lambda: len(texts()) == 51)
    assert texts() == [f"u{i}" for i in range(50)] + ["last"]


async def test_transfer_and_end_call(
    monitor: MonitorChannel, emulator: Emulator, client: AsyncElevenLabsClient
) -> None:
    async with ConversationSession(AGENT, client=client) as session:
        cid = session.conversation_id or ""
        await monitor.transfer_to_number("+15550100999", conversation_id=cid)
        await monitor.end_call(conversation_id=cid)
        await eventually(lambda: session.closed)
    assert emulator.monitor_commands[cid] == [
        {"command_type": "transfer_to_number", "parameters": {"phone_number": "+15550100999"}},
        {"command_type": "end_call"},
    ]
    # The server closed the monitor after end_call; the conversation is over now.
    with pytest.raises(ConversationOver):
        await monitor.contextual_update("too late", conversation_id=cid)


@pytest.mark.parametrize(
    ("refusal", "cls"),
    [
        ("plan", MonitorPlanRequired),
        ("scope", MonitorScopeMissing),
        ("role", MonitorRoleMissing),
        ("monitoring_disabled", MonitoringDisabled),
        ("conversation_over", ConversationOver),
    ],
)
async def test_each_refusal_is_a_named_error(
    monitor: MonitorChannel, emulator: Emulator, refusal: str, cls: type[MonitorRefused]
) -> None:
    emulator.monitor_refusal = refusal  # type: ignore[assignment]
    with pytest.raises(cls) as info:
        await monitor.contextual_update("x", call_sid=LIVE_SID)
    assert info.value.refusal == refusal
    assert info.value.close_code == 1008
    assert LIVE_CONVERSATION not in emulator.monitor_commands


async def test_a_finished_conversation_is_over(monitor: MonitorChannel) -> None:
    with pytest.raises(ConversationOver):
        await monitor.contextual_update("x", conversation_id="conv_fake0inbound0done00000000002")


async def test_account_refusals_are_remembered_briefly(
    client: AsyncElevenLabsClient, emulator: Emulator
) -> None:
    now = [0.0]
    async with MonitorChannel(client, settle=0.05, clock=lambda: now[0]) as monitor:
        emulator.monitor_refusal = "plan"
        with pytest.raises(MonitorPlanRequired):
            await monitor.contextual_update("x", conversation_id=LIVE_CONVERSATION)
        emulator.monitor_refusal = None
        with pytest.raises(MonitorPlanRequired, match="not retried"):
            await monitor.contextual_update("x", conversation_id=LIVE_CONVERSATION)
        assert emulator.count("monitor_ws") == 1
        now[0] += 61
        await monitor.contextual_update("x", conversation_id=LIVE_CONVERSATION)
        assert emulator.count("monitor_ws") == 2


async def test_a_wrong_key_is_refused_on_the_handshake(
    server: EmulatorServer, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.api_key = KEY
    secret = "sk_wrong_0123456789abcdef"
    async with (
        AsyncElevenLabsClient(KEY, base_url=server.base_url) as client,
        MonitorChannel(client, api_key=secret) as monitor,
    ):
        with (
            caplog.at_level(logging.DEBUG, logger="callsid_resolver"),
            pytest.raises(MonitorRefused) as info,
        ):
            await monitor.contextual_update("x", conversation_id=LIVE_CONVERSATION)
        assert secret not in repr(monitor)
    assert info.value.status_code == 403
    assert info.value.refusal == "forbidden"
    assert "xi-api-key: ***" in caplog.text  # websockets logged the header, masked
    assert secret not in caplog.text
    assert secret not in str(info.value)


async def test_an_unknown_call_sid_fails_resolution(monitor: MonitorChannel) -> None:
    with pytest.raises(ConversationNotFound):
        await monitor.contextual_update("x", call_sid="CA" + "0" * 32)


async def test_the_replay_is_not_counted_as_new_events(
    client: AsyncElevenLabsClient, resolver: AsyncCallSidResolver, emulator: Emulator
) -> None:
    heard: list[tuple[str, ServerEvent]] = []
    async with (
        ConversationSession(AGENT, client=client) as session,
        MonitorChannel(client, settle=0.05, on_event=lambda c, e: heard.append((c, e))) as monitor,
    ):
        cid = session.conversation_id or ""
        await session.send_user_message("hello")  # history: metadata and one agent response
        await eventually(lambda: len(emulator.sessions[cid].sent) >= 2)
        await monitor.contextual_update("VIP", conversation_id=cid)
        await eventually(lambda: (monitor.stats(cid) or _NONE).history_complete)
        stats = monitor.stats(cid)
        assert stats is not None
        assert (stats.connected, stats.replayed, stats.new_events) == (True, 2, 0)
        await session.send_user_message("again")
        await eventually(lambda: len(heard) == 1)
        assert heard[0][0] == cid
        assert isinstance(heard[0][1], AgentResponse)
        assert (monitor.stats(cid) or _NONE).new_events == 1
    assert monitor.stats(cid) is None  # closed


async def test_human_takeover_through_the_typed_commands(
    client: AsyncElevenLabsClient, monitor: MonitorChannel, emulator: Emulator
) -> None:
    async with ConversationSession(AGENT, client=client) as session:
        cid = session.conversation_id or ""
        assert await monitor.enable_human_takeover(conversation_id=cid) == cid
        await eventually(lambda: emulator.sessions[cid].human_takeover)
        await session.send_user_message("a human, please")
        await monitor.send_human_message("Ada from support here.", conversation_id=cid)
        said = [e.agent_response async for e in _agent_responses(session, 1)]
        assert said == ["Ada from support here."]
        await monitor.disable_human_takeover(conversation_id=cid)
        await eventually(lambda: not emulator.sessions[cid].human_takeover)
        await session.send_user_message("thanks")
        assert [e.agent_response async for e in _agent_responses(session, 1)] == [
            emulator.agent_reply
        ]
    assert emulator.monitor_commands[cid] == [
        {"command_type": "enable_human_takeover"},
        {"command_type": "send_human_message", "parameters": {"text": "Ada from support here."}},
        {"command_type": "disable_human_takeover"},
    ]


async def test_a_conversation_not_begun_is_refused_and_not_remembered(
    monitor: MonitorChannel, emulator: Emulator
) -> None:
    conversation = emulator.conversation(LIVE_CONVERSATION)
    assert conversation is not None
    conversation["status"] = "initiated"
    with pytest.raises(ConversationNotStarted) as info:
        await monitor.contextual_update("x", conversation_id=LIVE_CONVERSATION)
    assert info.value.refusal == "not_started"
    conversation["status"] = "in-progress"  # it began: the next send goes through
    await monitor.contextual_update("now", conversation_id=LIVE_CONVERSATION)
    assert emulator.count("monitor_ws") == 2


async def test_a_bearer_token_goes_as_authorization(
    server: EmulatorServer, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.api_key = KEY
    async with (
        AsyncElevenLabsClient("sk_unused", base_url=server.base_url) as client,
        MonitorChannel(client, bearer_token=KEY, settle=0.05) as monitor,
    ):
        with caplog.at_level(logging.DEBUG, logger="callsid_resolver"):
            await monitor.contextual_update("x", conversation_id=LIVE_CONVERSATION)
    assert KEY not in caplog.text
    assert emulator.requests.of("monitor_ws")[-1].status == 101


async def test_a_key_read_from_a_file_is_stripped_and_a_bad_one_never_shown(
    client: AsyncElevenLabsClient, emulator: Emulator
) -> None:
    emulator.api_key = KEY
    async with MonitorChannel(client, api_key=f" {KEY}\r\n", settle=0.05) as monitor:
        await monitor.contextual_update("x", conversation_id=LIVE_CONVERSATION)
    for bad in ("sk_se\x00cret", "sk_se\ncret", "sk_sé", "sk se", ""):
        with pytest.raises(ValueError, match="api_key is empty or holds") as info:
            MonitorChannel(client, api_key=bad)
        assert (bad or "\x00") not in str(info.value)


async def test_a_bad_key_header_from_the_client_is_a_monitor_error_without_the_key(
    client: AsyncElevenLabsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk_se\ncret_0123456789"
    monkeypatch.setattr(client, "auth_headers", lambda: {"xi-api-key": secret})
    async with MonitorChannel(client, settle=0.05) as monitor:
        with pytest.raises(MonitorUnavailable) as info:
            await monitor.contextual_update("x", conversation_id=LIVE_CONVERSATION)
    assert "xi-api-key header" in str(info.value)
    for part in secret.split("\n"):
        assert part not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


async def raw_server(reply: bytes) -> asyncio.Server:
    """A TCP server answering every request with `reply`, whatever it was asked."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


@pytest.mark.parametrize(
    "reply",
    [b"garbage\r\n\r\n", b"HTTP/1.1 101 Switching\r\nno colon here\r\n\r\n", b""],
)
async def test_a_garbled_handshake_is_monitor_unavailable(reply: bytes) -> None:
    server = await raw_server(reply)
    port = server.sockets[0].getsockname()[1]
    try:
        async with (
            AsyncElevenLabsClient(KEY, base_url=f"http://127.0.0.1:{port}") as client,
            MonitorChannel(client, settle=0.05, open_timeout=2) as monitor,
        ):
            with pytest.raises(MonitorUnavailable) as info:
                await monitor.contextual_update("x", conversation_id=LIVE_CONVERSATION)
    finally:
        server.close()
        await server.wait_closed()
    assert KEY not in str(info.value)


async def test_a_refusal_body_echoing_the_key_is_scrubbed() -> None:
    secret = "sk_echoed_0123456789abcdef"
    body = b'{"detail": {"status": "invalid_api_key", "message": "bad key ' + secret.encode()
    body += b' for this workspace"}}'
    reply = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    server = await raw_server(reply)
    port = server.sockets[0].getsockname()[1]
    try:
        async with (
            AsyncElevenLabsClient(secret, base_url=f"http://127.0.0.1:{port}") as client,
            MonitorChannel(client, settle=0.05) as monitor,
        ):
            with pytest.raises(MonitorRefused) as info:
                await monitor.contextual_update("x", conversation_id=LIVE_CONVERSATION)
    finally:
        server.close()
        await server.wait_closed()
    assert info.value.status_code == 401
    assert secret not in str(info.value)
    assert "bad key *** for this workspace" in str(info.value)


async def test_without_websockets_the_monitor_gives_the_install_hint(
    client: AsyncElevenLabsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "websockets" or m.startswith("websockets.")]:
        monkeypatch.setitem(sys.modules, name, None)
    async with MonitorChannel(client, settle=0.05) as monitor:
        with pytest.raises(MonitorUnavailable, match="pip install") as info:
            await monitor.contextual_update("x", conversation_id=LIVE_CONVERSATION)
    assert not isinstance(info.value, ImportError)
    with pytest.raises(SessionOpenFailed, match="pip install"):
        await ConversationSession(AGENT, client=client).open()


_NONE = MonitorStats(connected=False, history_complete=False, replayed=0, new_events=0)


async def _agent_responses(session: ConversationSession, n: int) -> AsyncIterator[AgentResponse]:
    async def take() -> list[AgentResponse]:
        found: list[AgentResponse] = []
        async for event in session.events():
            if isinstance(event, AgentResponse):
                found.append(event)
                if len(found) == n:
                    break
        return found

    for event in await asyncio.wait_for(take(), 5):
        yield event
