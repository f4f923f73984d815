"""`Sender` and `SessionRegistry`: channel choice, order, backpressure, and `NotLive`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from callsid_resolver import AsyncCallSidResolver, AsyncElevenLabsClient
from callsid_resolver.live import (
    ConversationOver,
    ConversationSession,
    MemoryMailbox,
    MonitorChannel,
    NotLive,
    Sender,
    SendTimeout,
    SessionClosed,
    SessionRegistry,
)
from callsid_resolver.testing import Emulator

from .conftest import AGENT, LIVE_CONVERSATION, LIVE_SID, CuttableProxy, eventually

BRIDGE_SID = "CA" + "1234abcd" * 4


@pytest.fixture
async def registry(resolver: AsyncCallSidResolver) -> SessionRegistry:
    return SessionRegistry(resolver)


@pytest.fixture
async def session(
    client: AsyncElevenLabsClient, registry: SessionRegistry
) -> AsyncIterator[ConversationSession]:
    async with ConversationSession(AGENT, client=client) as s:
        await registry.register(s, call_sid=BRIDGE_SID)
        yield s


@pytest.fixture
async def monitor(
    client: AsyncElevenLabsClient, resolver: AsyncCallSidResolver
) -> AsyncIterator[MonitorChannel]:
    async with MonitorChannel(client, resolver=resolver, settle=0.05) as channel:
        yield channel


def updates(emulator: Emulator, conversation_id: str) -> list[str]:
    events = emulator.session_events(conversation_id)
    return [e["text"] for e in events if e.get("type") == "contextual_update"]


async def test_registering_primes_the_resolver_and_closing_leaves(
    client: AsyncElevenLabsClient, registry: SessionRegistry, resolver: AsyncCallSidResolver
) -> None:
    async with ConversationSession(AGENT, client=client) as s:
        await registry.register(s, call_sid=BRIDGE_SID)
        assert registry.get(call_sid=BRIDGE_SID) is s
        assert registry.get(conversation_id=s.conversation_id) is s
        assert registry.call_sid_of(s.conversation_id or "") == BRIDGE_SID
        resolution = await resolver.resolve(BRIDGE_SID)
        assert resolution.conversation_id == s.conversation_id
        assert resolution.requests == 0
    assert len(registry) == 0
    assert registry.get(call_sid=BRIDGE_SID) is None
    with pytest.raises(SessionClosed):
        await registry.register(s, call_sid=BRIDGE_SID)


async def test_own_session_first(
    session: ConversationSession, registry: SessionRegistry, emulator: Emulator
) -> None:
    sender = Sender(registry=registry, mailbox=MemoryMailbox())
    receipt = await sender.send_contextual_update("CRM: ticket #4711", call_sid=BRIDGE_SID)
    assert (receipt.channel, receipt.kind) == ("session", "contextual_update")
    assert receipt.conversation_id == session.conversation_id
    assert receipt.confirmed
    by_id = await sender.send_user_message("hi", conversation_id=session.conversation_id)
    assert by_id.channel == "session"
    result = await sender.send_tool_result("toolu_1", {"ok": True}, call_sid=BRIDGE_SID)
    assert result.kind == "client_tool_result"
    cid = session.conversation_id or ""
    await eventually(lambda: len(emulator.session_events(cid)) >= 4)
    kinds = [e["type"] for e in emulator.session_events(cid) if e["type"] != "pong"]
    assert kinds[1:] == ["contextual_update", "user_message", "client_tool_result"]


async def test_a_burst_of_1000_through_the_sender_keeps_order(
    session: ConversationSession, registry: SessionRegistry, emulator: Emulator
) -> None:
    sender = Sender(registry=registry, queue_size=64, send_timeout=30)
    receipts = await asyncio.gather(
        *(sender.send_contextual_update(f"b{i}", call_sid=BRIDGE_SID) for i in range(1000))
    )
    assert {r.channel for r in receipts} == {"session"}
    cid = session.conversation_id or ""
    await eventually(lambda: len(updates(emulator, cid)) == 1000)
    assert updates(emulator, cid) == [f"b{i}" for i in range(1000)]
    await sender.aclose()


async def test_monitor_when_there_is_no_session(
    registry: SessionRegistry, monitor: MonitorChannel, emulator: Emulator
) -> None:
    mailbox = MemoryMailbox()
    sender = Sender(registry=registry, monitor=monitor, mailbox=mailbox)
    receipt = await sender.send_contextual_update("VIP", call_sid=LIVE_SID)
    assert (receipt.channel, receipt.conversation_id) == ("monitor", LIVE_CONVERSATION)
    # The monitor has no user_message: it goes to the mailbox, and the receipt says so.
    message = await sender.send_user_message("call me back", call_sid=LIVE_SID)
    assert message.channel == "mailbox"
    assert await mailbox.drain(LIVE_SID) == [{"type": "user_message", "text": "call me back"}]


async def test_mailbox_when_the_monitor_refuses(
    registry: SessionRegistry, monitor: MonitorChannel, emulator: Emulator
) -> None:
    emulator.monitor_refusal = "plan"
    mailbox = MemoryMailbox()
    sender = Sender(registry=registry, monitor=monitor, mailbox=mailbox)
    for text in ("one", "two"):
        receipt = await sender.send_contextual_update(text, call_sid=LIVE_SID)
        assert receipt.channel == "mailbox"
    assert [i["text"] for i in await mailbox.drain(LIVE_SID)] == ["one", "two"]
    assert emulator.count("monitor_ws") == 1  # the plan refusal is remembered, not re-asked


async def test_not_live_says_why_for_each_channel(
    registry: SessionRegistry, monitor: MonitorChannel, emulator: Emulator
) -> None:
    emulator.monitor_refusal = "monitoring_disabled"
    mailbox = MemoryMailbox(max_items=1)
    await mailbox.post(LIVE_SID, "already waiting")
    sender = Sender(registry=registry, monitor=monitor, mailbox=mailbox)
    with pytest.raises(NotLive) as info:
        await sender.send_contextual_update("x", call_sid=LIVE_SID)
    reasons = info.value.reasons
    assert list(reasons) == ["session", "monitor", "mailbox"]
    assert reasons["session"] == "no open session for this call in this process"
    assert reasons["monitor"].startswith("MonitoringDisabled: ")
    assert reasons["mailbox"].startswith("MailboxFull: ")
    assert LIVE_SID in str(info.value)
    with pytest.raises(NotLive) as tool:
        await sender.send_tool_result("toolu_9", "late", call_sid=LIVE_SID)
    assert "contextual updates only" in tool.value.reasons["monitor"]
    assert "session that got the call" in tool.value.reasons["mailbox"]


def test_a_sender_without_any_channel_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="at least one channel"):
        Sender()


async def test_a_user_message_with_no_channel_for_it_is_not_live(
    registry: SessionRegistry,
) -> None:
    with pytest.raises(NotLive) as info:
        await Sender(registry=registry).send_user_message("x", conversation_id="conv_1")
    assert info.value.reasons == {
        "session": "no open session for this call in this process",
        "monitor": "the monitor socket takes contextual updates only, not user_message "
        "(no such monitor command)",
        "mailbox": "no mailbox configured",
    }


async def test_a_named_channel_is_the_only_one_tried(
    session: ConversationSession, registry: SessionRegistry
) -> None:
    mailbox = MemoryMailbox()
    sender = Sender(registry=registry, mailbox=mailbox)
    receipt = await sender.send_contextual_update("m", call_sid=BRIDGE_SID, channel="mailbox")
    assert receipt.channel == "mailbox"
    assert await mailbox.drain(BRIDGE_SID) == [{"type": "contextual_update", "text": "m"}]
    with pytest.raises(NotLive) as info:
        await sender.send_contextual_update("m", call_sid=LIVE_SID, channel="session")
    assert list(info.value.reasons) == ["session"]


class SlowMailbox(MemoryMailbox):
    def __init__(self, delay: float) -> None:
        super().__init__(max_items=10_000)
        self.delay = delay
        self.gate = asyncio.Event()
        self.gate.set()

    async def post(self, call_sid: str, item: Any) -> int:
        await self.gate.wait()
        await asyncio.sleep(self.delay)
        return await super().post(call_sid, item)


async def test_backpressure_waits_in_order_then_times_out() -> None:
    mailbox = SlowMailbox(0.0005)
    sender = Sender(mailbox=mailbox, queue_size=4, send_timeout=5)
    await asyncio.gather(
        *(sender.send_user_message(f"w{i}", call_sid=BRIDGE_SID) for i in range(200))
    )
    assert [i["text"] for i in await mailbox.drain(BRIDGE_SID)] == [f"w{i}" for i in range(200)]

    mailbox.gate.clear()  # the lane stalls: 1 in flight, 4 queued, the 6th must time out
    sender.send_timeout = 0.05
    stuck = [
        asyncio.create_task(sender.send_user_message(f"s{i}", call_sid=BRIDGE_SID))
        for i in range(5)
    ]
    await asyncio.sleep(0.01)
    with pytest.raises(SendTimeout) as info:
        await sender.send_user_message("s5", call_sid=BRIDGE_SID)
    assert info.value.queue_size == 4
    mailbox.gate.set()
    await asyncio.gather(*stuck)
    assert [i["text"] for i in await mailbox.drain(BRIDGE_SID)] == [f"s{i}" for i in range(5)]
    await sender.aclose()


async def test_a_drop_mid_burst_through_the_sender_is_never_silent(
    proxy: CuttableProxy, registry: SessionRegistry, emulator: Emulator
) -> None:
    session = await ConversationSession(AGENT, base_url=f"http://127.0.0.1:{proxy.port}").open()
    await registry.register(session, call_sid=BRIDGE_SID)
    cid = session.conversation_id or ""
    sender = Sender(registry=registry, queue_size=10_000)
    results: dict[int, str] = {}

    async def send(i: int) -> None:
        try:
            await sender.send_contextual_update(f"d{i}", call_sid=BRIDGE_SID)
            results[i] = "delivered"
        except (SessionClosed, NotLive, ConversationOver):  # the drop ended the conversation
            results[i] = "raised"

    async def burst() -> None:
        tasks = []
        for i in range(3000):
            tasks.append(asyncio.create_task(send(i)))
            if i % 25 == 0:
                await asyncio.sleep(0)
        await asyncio.gather(*tasks)

    async def cut() -> None:
        await eventually(lambda: len(updates(emulator, cid)) >= 300)
        proxy.cut()

    await asyncio.gather(burst(), cut())
    await session.close()
    await sender.aclose()
    assert len(results) == 3000  # delivered + raised == sent
    assert "raised" in results.values()
    await eventually(lambda: not emulator.sessions[cid].live)
    received = updates(emulator, cid)
    assert received == [f"d{i}" for i in range(len(received))]
    assert {i for i, r in results.items() if r == "delivered"} <= set(range(len(received)))
