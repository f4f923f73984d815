"""`MonitorChannel` against the emulator's monitoring socket."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from callsid_resolver import AsyncCallSidResolver, AsyncElevenLabsClient, ConversationNotFound
from callsid_resolver.live import (
    ConversationOver,
    ConversationSession,
    MonitorChannel,
    MonitoringDisabled,
    MonitorPlanRequired,
    MonitorRefused,
    MonitorScopeMissing,
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
