"""`ConversationSession` against the emulator's agent socket."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from typing import Any

import pytest

from callsid_resolver import AsyncElevenLabsClient, SessionClosed, SessionOpenFailed
from callsid_resolver.live import AgentResponse, ClientToolCall, ConversationSession, UnknownEvent
from callsid_resolver.testing import Emulator, EmulatorServer, Session

from .conftest import AGENT, CuttableProxy, eventually, on_server


def client_events(emulator: Emulator, conversation_id: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in emulator.session_events(conversation_id) if e.get("type") == kind]


async def test_opens_through_a_signed_url_and_sends_initiation_first(
    client: AsyncElevenLabsClient, emulator: Emulator
) -> None:
    async with ConversationSession(
        AGENT, client=client, dynamic_variables={"customer": "gold", "n": 3}, user_id="u1"
    ) as session:
        assert session.conversation_id is not None
        assert session.metadata is not None
        assert session.metadata.user_input_audio_format == "pcm_16000"
        cid = session.conversation_id
    first = emulator.session_events(cid)[0]
    assert first == {
        "type": "conversation_initiation_client_data",
        "dynamic_variables": {"customer": "gold", "n": 3},
        "user_id": "u1",
    }
    assert session.closed


async def test_public_agent_by_agent_id(server: EmulatorServer, emulator: Emulator) -> None:
    async with ConversationSession(AGENT, base_url=server.base_url) as session:
        await session.send_user_message("hello")
        async for event in session.events():
            if isinstance(event, AgentResponse):
                assert event.agent_response == emulator.agent_reply
                break
    assert emulator.conversation(session.conversation_id or "")["agent_id"] == AGENT  # type: ignore[index]


async def test_a_refused_signed_url_fails_without_showing_the_signature(
    server: EmulatorServer, emulator: Emulator
) -> None:
    token = emulator.sign(AGENT)
    url = f"{server.ws_url}/v1/convai/conversation?agent_id={AGENT}&conversation_signature={token}x"
    with pytest.raises(SessionOpenFailed) as info:
        await ConversationSession(url=url).open()
    assert info.value.status_code == 403
    assert token not in str(info.value)
    assert token not in repr(ConversationSession(url=url))


async def test_debug_logs_never_hold_the_signature(
    client: AsyncElevenLabsClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="callsid_resolver"):
        async with ConversationSession(AGENT, client=client) as session:
            await session.send_contextual_update("x")
    assert "GET /v1/convai/conversation?" in caplog.text  # websockets did log the request line
    assert "conversation_signature=***" in caplog.text
    signature_chars = [r for r in caplog.records if "conversation_signature=" in r.getMessage()]
    assert all("conversation_signature=***" in r.getMessage() for r in signature_chars)


async def test_every_ping_gets_its_pong_over_a_long_session(
    client: AsyncElevenLabsClient, emulator: Emulator
) -> None:
    emulator.ping_interval = 0.002
    async with ConversationSession(AGENT, client=client) as session:
        cid = session.conversation_id or ""
        record = emulator.sessions[cid]
        sent = 0
        while len(record.pings) < 300:  # keep the socket busy both ways meanwhile
            await session.send_contextual_update(f"tick {sent}")
            sent += 1
            await asyncio.sleep(0.001)
        pings = list(record.pings)
        await eventually(lambda: set(pings[:-1]) <= set(record.pongs))
    assert record.missed_pongs == []
    assert len(record.pongs) >= 299
    # Pongs echo event ids in the order the pings came.
    assert record.pongs == sorted(record.pongs)


async def test_a_burst_of_1000_updates_arrives_in_order(
    client: AsyncElevenLabsClient, emulator: Emulator
) -> None:
    async with ConversationSession(AGENT, client=client) as session:
        await asyncio.gather(*(session.send_contextual_update(f"u{i}") for i in range(1000)))
        cid = session.conversation_id or ""
    # Every send returned, so the server has every one (confirmed); the app records them in order.
    await eventually(lambda: len(client_events(emulator, cid, "contextual_update")) == 1000)
    texts = [e["text"] for e in client_events(emulator, cid, "contextual_update")]
    assert texts == [f"u{i}" for i in range(1000)]


async def test_send_after_close_raises_session_closed(client: AsyncElevenLabsClient) -> None:
    session = await ConversationSession(AGENT, client=client).open()
    await session.close()
    await session.close()  # twice is fine
    with pytest.raises(SessionClosed) as info:
        await session.send_contextual_update("too late")
    assert info.value.sent is False
    with pytest.raises(SessionClosed):
        await session.send_user_message("still too late")


async def test_server_close_is_seen_and_later_sends_raise(
    client: AsyncElevenLabsClient, emulator: Emulator
) -> None:
    closed: list[ConversationSession] = []
    async with ConversationSession(AGENT, client=client) as session:
        session.add_close_callback(closed.append)
        cid = session.conversation_id or ""
        await on_server(emulator, cid, lambda s: s.close(1000, "max duration"))
        await eventually(lambda: session.closed)
        assert closed == [session]
        assert session.close_code == 1000
        with pytest.raises(SessionClosed, match="max duration"):
            await session.send_contextual_update("after the end")


async def test_a_drop_mid_burst_loses_nothing_silently(
    proxy: CuttableProxy, emulator: Emulator
) -> None:
    base = f"http://127.0.0.1:{proxy.port}"
    session = await ConversationSession(AGENT, base_url=base).open()
    cid = session.conversation_id or ""
    outcomes: dict[int, str] = {}

    async def send(i: int) -> None:
        try:
            await session.send_contextual_update(f"m{i}")
            outcomes[i] = "delivered"
        except SessionClosed:
            outcomes[i] = "raised"

    async def burst() -> None:
        tasks = []
        for i in range(2000):
            tasks.append(asyncio.create_task(send(i)))
            if i % 20 == 0:
                await asyncio.sleep(0)  # let writes interleave with the cut
        await asyncio.gather(*tasks)

    async def cut_when_busy() -> None:
        await eventually(lambda: len(client_events(emulator, cid, "contextual_update")) >= 300)
        proxy.cut()

    await asyncio.gather(burst(), cut_when_busy())
    await session.close()
    delivered = sorted(i for i, o in outcomes.items() if o == "delivered")
    raised = [i for i, o in outcomes.items() if o == "raised"]
    assert len(delivered) + len(raised) == 2000
    assert raised, "the cut came after the burst: nothing was tested"
    await eventually(lambda: not emulator.sessions[cid].live)
    received = [e["text"] for e in client_events(emulator, cid, "contextual_update")]
    # What arrived is a prefix of what was sent, in order, and holds every delivered message.
    assert received == [f"m{i}" for i in range(len(received))]
    assert set(delivered) <= set(range(len(received)))


async def test_client_tools_round_trip(client: AsyncElevenLabsClient, emulator: Emulator) -> None:
    async def lookup(params: dict[str, Any]) -> dict[str, Any]:
        return {"order": params["order_number"], "status": "shipped"}

    def fails(params: dict[str, Any]) -> str:
        raise RuntimeError("CRM is down")

    async with ConversationSession(AGENT, client=client, tools={"lookup": lookup}) as session:

        @session.tool("greet")
        def greet(params: dict[str, Any]) -> str:
            return f"hello {params['name']}"

        session.tool("fails")(fails)
        cid = session.conversation_id or ""
        calls = {
            name: await emulator.call_client_tool(cid, name, params)
            for name, params in [
                ("lookup", {"order_number": "A-1"}),
                ("greet", {"name": "Ada"}),
                ("fails", {}),
                ("missing", {}),
            ]
        }
        record = emulator.sessions[cid]
        await eventually(lambda: all(record.tool_results(t) for t in calls.values()))
        seen = [e async for e in _take(session, 4, ClientToolCall)]
    results = {name: record.tool_results(tid)[0] for name, tid in calls.items()}
    assert results["lookup"]["result"] == '{"order": "A-1", "status": "shipped"}'
    assert results["lookup"]["is_error"] is False
    assert results["greet"]["result"] == "hello Ada"
    assert results["fails"] == {
        "type": "client_tool_result",
        "tool_call_id": calls["fails"],
        "result": "CRM is down",
        "is_error": True,
    }
    assert results["missing"]["is_error"] is True
    assert "no handler" in results["missing"]["result"]
    assert [e.tool_name for e in seen] == ["lookup", "greet", "fails", "missing"]


async def test_a_slow_tool_never_blocks_pings(
    client: AsyncElevenLabsClient, emulator: Emulator
) -> None:
    emulator.ping_interval = 0.01
    release = threading.Event()

    def slow(params: dict[str, Any]) -> str:
        release.wait(5)
        return "done"

    async def slow_async(params: dict[str, Any]) -> str:
        await asyncio.sleep(0.3)
        return "done async"

    tools = {"slow": slow, "slow_async": slow_async}
    async with ConversationSession(AGENT, client=client, tools=tools) as session:
        cid = session.conversation_id or ""
        record = emulator.sessions[cid]
        t1 = await emulator.call_client_tool(cid, "slow")
        t2 = await emulator.call_client_tool(cid, "slow_async")
        start = len(record.pings)
        await eventually(lambda: len(record.pings) >= start + 20)  # ~0.2 s of pings
        assert not record.tool_results(t1)
        assert record.missed_pongs == []
        release.set()
        await eventually(lambda: bool(record.tool_results(t1) and record.tool_results(t2)))
    assert record.missed_pongs == []


async def test_unknown_server_events_pass_through(
    client: AsyncElevenLabsClient, emulator: Emulator
) -> None:
    async with ConversationSession(AGENT, client=client) as session:
        cid = session.conversation_id or ""
        for message in (
            {"type": "agent_typing", "agent_typing_event": {"is_typing": True}},
            {"type": "brand_new_event_2027", "brand_new_event": {"x": 1}},
            {"type": "client_tool_call", "client_tool_call": {"oops": True}},
        ):
            await on_server(emulator, cid, functools.partial(Session.send, event=message))
        await session.send_user_message("still alive?")
        unknown = [e async for e in _take(session, 3, UnknownEvent)]
        async for event in session.events():
            if isinstance(event, AgentResponse):
                break
    assert [e.type for e in unknown] == ["agent_typing", "brand_new_event_2027", "client_tool_call"]
    assert unknown[1].raw == {"type": "brand_new_event_2027", "brand_new_event": {"x": 1}}


async def test_unconfirmed_mode_is_faster_and_still_ordered(
    client: AsyncElevenLabsClient, emulator: Emulator
) -> None:
    async with ConversationSession(AGENT, client=client, confirm=False) as session:
        start = time.perf_counter()
        for i in range(200):
            await session.send_contextual_update(f"f{i}")
        assert time.perf_counter() - start < 5
        cid = session.conversation_id or ""
    await eventually(lambda: len(client_events(emulator, cid, "contextual_update")) == 200)


async def _take(session: ConversationSession, n: int, kind: type[Any]) -> Any:
    got = 0
    async for event in session.events():
        if isinstance(event, kind):
            yield event
            got += 1
            if got == n:
                return


async def test_structured_tool_results_go_out_as_json_strings_even_under_strict_events(
    client: AsyncElevenLabsClient, emulator: Emulator
) -> None:
    emulator.profile = "observed"  # a non-string result would close the socket with 1008
    assert emulator.profile.strict_client_events

    async with ConversationSession(
        AGENT, client=client, tools={"lookup": lambda p: {"n": [1, 2], "ok": True}}
    ) as session:
        cid = session.conversation_id or ""
        tool_call_id = await emulator.call_client_tool(cid, "lookup", {})
        await session.send_tool_result("toolu_manual", {"b": None})
        record = emulator.sessions[cid]
        await eventually(lambda: bool(record.tool_results(tool_call_id)))
        assert record.live  # nothing was refused
    assert record.tool_results(tool_call_id)[0]["result"] == '{"n": [1, 2], "ok": true}'
    assert record.tool_results("toolu_manual")[0]["result"] == '{"b": null}'


async def test_a_second_initiation_metadata_does_not_repoint_the_session(
    client: AsyncElevenLabsClient, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    async with ConversationSession(AGENT, client=client) as session:
        cid = session.conversation_id or ""
        other = {"conversation_id": "conv_someone0else", "agent_output_audio_format": "pcm_16000"}
        message = {
            "type": "conversation_initiation_metadata",
            "conversation_initiation_metadata_event": other,
        }
        with caplog.at_level(logging.WARNING, "callsid_resolver.live"):
            await on_server(emulator, cid, lambda s: s.send(message))
            await session.send_user_activity()  # confirmed: the reader has read what came before
            await eventually(lambda: "conv_someone0else" in caplog.text)
        assert session.conversation_id == cid
        assert session.metadata is not None
        assert session.metadata.conversation_id == cid
        await session.send_contextual_update("still here")
    assert client_events(emulator, cid, "contextual_update")[0]["text"] == "still here"


async def test_a_flood_of_client_tool_calls_runs_a_bounded_number_of_handlers(
    client: AsyncElevenLabsClient, emulator: Emulator
) -> None:
    running = peak = 0

    async def handler(params: dict[str, Any]) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.002)
        running -= 1
        return f"r{params['i']}"

    async with ConversationSession(
        AGENT,
        client=client,
        tools={"t": handler},
        max_tool_calls=4,
        max_pending_tool_calls=150,
    ) as session:
        cid = session.conversation_id or ""
        record = emulator.sessions[cid]

        async def flood(s: Session) -> list[str]:
            return [await s.call_client_tool("t", {"i": i}) for i in range(400)]

        calls = await on_server(emulator, cid, flood)
        await eventually(lambda: all(record.tool_results(t) for t in calls), timeout=20)
        tasks_now = len(session._tool_calls.tasks)
    results = [record.tool_results(t)[0] for t in calls]
    assert peak <= 4
    assert tasks_now <= 4
    answered = [r for r in results if not r["is_error"]]
    refused = [r for r in results if r["is_error"]]
    # Every call got exactly one answer: run in turn, or refused once the queue was full.
    assert len(answered) + len(refused) == 400
    assert len(answered) >= 154  # 4 running + 150 waiting at the worst moment
    assert all(r["result"].startswith("too many client tool calls") for r in refused)
    assert [r["result"] for r in answered] == [
        f"r{i}" for i, r in enumerate(results) if not r["is_error"]
    ]
