"""`Sender` and `SessionRegistry`: channel choice, order, backpressure, and `NotLive`."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from callsid_resolver import (
    AsyncCallSidResolver,
    AsyncElevenLabsClient,
    CallMismatch,
    CallSidResolverError,
    ConversationOver,
    NotLive,
    SenderError,
    SendTimeout,
    SessionClosed,
)
from callsid_resolver.live import (
    ConversationSession,
    MemoryMailbox,
    MonitorChannel,
    Sender,
    SessionRegistry,
)
from callsid_resolver.testing import Emulator

from .conftest import AGENT, DONE_SID, LIVE_CONVERSATION, LIVE_SID, CuttableProxy, eventually

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


# -- a finished call, receipts, contradictions, faults ------------------------------------------
DONE_CONVERSATION = "conv_fake0inbound0done00000000002"


async def test_a_finished_call_is_over_on_every_channel(
    registry: SessionRegistry, monitor: MonitorChannel, resolver: AsyncCallSidResolver
) -> None:
    mailbox = MemoryMailbox()
    everything = Sender(registry=registry, monitor=monitor, mailbox=mailbox)
    for channel in (None, "session", "monitor"):
        with pytest.raises(ConversationOver) as info:
            await everything.send_contextual_update("late", call_sid=DONE_SID, channel=channel)
        assert info.value.conversation_id == DONE_CONVERSATION
        assert info.value.status in (None, "done")  # None: the monitor refused, no GET told
        with pytest.raises(ConversationOver):  # no monitor command: session, then mailbox
            await everything.send_user_message("late", call_sid=DONE_SID, channel=channel)
    assert await mailbox.drain(DONE_SID) == []
    # Each channel alone says the same, the mailbox with nothing but a resolver to ask.
    for alone in (
        Sender(registry=registry),
        Sender(monitor=monitor),
        Sender(mailbox=mailbox, resolver=resolver),
    ):
        with pytest.raises(ConversationOver):
            await alone.send_contextual_update("late", call_sid=DONE_SID)
    assert await mailbox.drain(DONE_SID) == []
    # Named explicitly, the mailbox takes it: the caller asked for exactly that.
    receipt = await everything.send_contextual_update("note", call_sid=DONE_SID, channel="mailbox")
    assert (receipt.channel, receipt.conversation_id) == ("mailbox", DONE_CONVERSATION)
    assert [i["text"] for i in await mailbox.drain(DONE_SID)] == ["note"]


@pytest.mark.parametrize("status", ["done", "failed", "processing"])
async def test_a_call_that_ended_since_it_was_resolved_is_over(
    resolver: AsyncCallSidResolver, emulator: Emulator, status: str
) -> None:
    assert (await resolver.resolve(LIVE_SID)).status == "in-progress"  # cached as live
    conversation = emulator.conversation(LIVE_CONVERSATION)
    assert conversation is not None
    conversation["status"] = status
    mailbox = MemoryMailbox()
    with pytest.raises(ConversationOver) as info:
        await Sender(mailbox=mailbox, resolver=resolver).send_user_message("x", call_sid=LIVE_SID)
    assert info.value.status == status
    assert await mailbox.drain(LIVE_SID) == []


async def test_the_status_check_is_one_get_per_conversation_per_status_ttl(
    resolver: AsyncCallSidResolver, emulator: Emulator
) -> None:
    mailbox = MemoryMailbox(max_items=1000)
    sender = Sender(mailbox=mailbox, resolver=resolver, status_ttl=60)
    await asyncio.gather(*(sender.send_user_message(f"m{i}", call_sid=LIVE_SID) for i in range(50)))
    assert emulator.count("get") <= 1  # the resolver's own, or one status check
    assert len(await mailbox.drain(LIVE_SID)) == 50
    await sender.aclose()


async def test_a_receipt_names_the_conversation_and_why_earlier_channels_were_skipped(
    registry: SessionRegistry, monitor: MonitorChannel, emulator: Emulator
) -> None:
    emulator.monitor_refusal = "scope"
    sender = Sender(registry=registry, monitor=monitor, mailbox=MemoryMailbox())
    receipt = await sender.send_contextual_update("VIP", call_sid=LIVE_SID)
    assert (receipt.channel, receipt.conversation_id) == ("mailbox", LIVE_CONVERSATION)
    assert receipt.skipped["session"] == "no open session for this call in this process"
    assert receipt.skipped["monitor"].startswith("MonitorScopeMissing: ")
    assert "mailbox" not in receipt.skipped
    emulator.monitor_refusal = None
    async with MonitorChannel(monitor.resolver.client, resolver=monitor.resolver) as fresh:  # type: ignore[union-attr]
        first = await Sender(registry=registry, monitor=fresh).send_contextual_update(
            "VIP", call_sid=LIVE_SID
        )
    assert first.channel == "monitor"
    assert list(first.skipped) == ["session"]


async def test_a_call_sid_contradicting_the_conversation_id_is_refused(
    session: ConversationSession, registry: SessionRegistry, monitor: MonitorChannel
) -> None:
    mailbox = MemoryMailbox()
    sender = Sender(registry=registry, monitor=monitor, mailbox=mailbox)
    for sid, actual in ((LIVE_SID, LIVE_CONVERSATION), (BRIDGE_SID, session.conversation_id)):
        with pytest.raises(CallMismatch) as info:
            await sender.send_contextual_update("x", call_sid=sid, conversation_id="conv_other1")
        assert info.value.actual == actual
        assert isinstance(info.value, ValueError)
    assert await mailbox.drain(LIVE_SID) == []
    assert await mailbox.drain(BRIDGE_SID) == []
    # Agreeing ids, or a call the resolver cannot find (maybe hidden while live), go through.
    agreed = await sender.send_contextual_update(
        "ok", call_sid=LIVE_SID, conversation_id=LIVE_CONVERSATION
    )
    assert agreed.channel == "monitor"
    unknown = "CA" + "0" * 32
    receipt = await sender.send_user_message("x", call_sid=unknown, conversation_id="conv_x1")
    assert (receipt.channel, receipt.conversation_id) == ("mailbox", "conv_x1")


class BrokenMailbox(MemoryMailbox):
    """A backend failing with an error of its own library (here a Redis connection error)."""

    async def post(self, call_sid: str, item: Any) -> int:
        import redis.exceptions

        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:1")


async def test_a_channel_fault_is_a_reason_and_the_next_channel_is_tried(
    registry: SessionRegistry, client: AsyncElevenLabsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk_bro\nken_0123456789"
    monkeypatch.setattr(client, "auth_headers", lambda: {"xi-api-key": secret})
    mailbox = MemoryMailbox()
    async with MonitorChannel(client, settle=0.05) as monitor:
        sender = Sender(registry=registry, monitor=monitor, mailbox=mailbox)
        receipt = await sender.send_contextual_update(
            "x", call_sid=LIVE_SID, conversation_id=LIVE_CONVERSATION
        )
    assert receipt.channel == "mailbox"
    assert receipt.skipped["monitor"].startswith("MonitorUnavailable: ")
    assert "sk_bro" not in receipt.skipped["monitor"]
    with pytest.raises(NotLive) as info:
        await Sender(mailbox=BrokenMailbox()).send_user_message("x", call_sid=LIVE_SID)
    assert info.value.reasons["mailbox"] == (
        "redis.exceptions.ConnectionError (details logged at DEBUG)"
    )
    assert isinstance(info.value, CallSidResolverError)


async def test_without_websockets_the_sender_falls_back_to_the_mailbox(
    registry: SessionRegistry, monitor: MonitorChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "websockets" or m.startswith("websockets.")]:
        monkeypatch.setitem(sys.modules, name, None)
    sender = Sender(registry=registry, monitor=monitor, mailbox=MemoryMailbox())
    receipt = await sender.send_contextual_update("x", call_sid=LIVE_SID)
    assert receipt.channel == "mailbox"
    assert "pip install" in receipt.skipped["monitor"]


async def test_a_garbled_monitor_handshake_falls_back_to_the_mailbox(
    resolver: AsyncCallSidResolver,
) -> None:
    async def garble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade websocket\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garble, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    mailbox = MemoryMailbox()
    try:
        async with (
            AsyncElevenLabsClient("test-key", base_url=f"http://127.0.0.1:{port}") as elsewhere,
            MonitorChannel(elsewhere, resolver=resolver, settle=0.05) as monitor,
        ):
            sender = Sender(monitor=monitor, mailbox=mailbox, resolver=resolver)
            receipt = await sender.send_contextual_update("x", call_sid=LIVE_SID)
    finally:
        server.close()
        await server.wait_closed()
    assert (receipt.channel, receipt.conversation_id) == ("mailbox", LIVE_CONVERSATION)
    assert receipt.skipped["monitor"].endswith("the server's handshake reply was garbled")
    assert [i["text"] for i in await mailbox.drain(LIVE_SID)] == ["x"]


async def test_a_send_that_may_have_arrived_is_not_sent_again_through_the_mailbox(
    registry: SessionRegistry, session: ConversationSession
) -> None:
    mailbox = MemoryMailbox()
    cid = session.conversation_id or ""

    async def dropped_under_the_write(event: Any) -> None:
        # The socket closed while the frame was being written: it may have reached the agent.
        raise SessionClosed(cid, code=1006, reason="", sent=True)

    session.write = dropped_under_the_write  # type: ignore[method-assign]
    sender = Sender(registry=registry, mailbox=mailbox)
    with pytest.raises(SessionClosed) as info:
        await sender.send_contextual_update("once only", call_sid=BRIDGE_SID)
    await sender.aclose()
    assert info.value.sent
    assert await mailbox.drain(BRIDGE_SID) == []


class StuckMailbox(MemoryMailbox):
    """A mailbox whose posts never finish (a Redis that stopped answering mid-write)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()

    async def post(self, call_sid: str, item: Any) -> int:
        self.entered.set()
        await asyncio.Event().wait()
        return 0

    async def post_many(self, call_sid: str, items: Sequence[Any]) -> int:
        return await self.post(call_sid, items)


async def test_closing_the_sender_settles_a_send_being_written() -> None:
    mailbox = StuckMailbox()
    sender = Sender(mailbox=mailbox)
    send = asyncio.create_task(sender.send_contextual_update("x", call_sid="CA" + "1" * 32))
    await asyncio.wait_for(mailbox.entered.wait(), 5)
    await sender.aclose()
    with pytest.raises(SenderError, match="may or may not have arrived"):
        await asyncio.wait_for(send, 5)  # it hung forever before
