"""The agent socket and the monitoring socket, on a real loopback server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from callsid_resolver.testing import Emulator, EmulatorServer

from .conftest import DONE_ID, KEY, LIST, LIVE_ID

INIT = {
    "type": "conversation_initiation_client_data",
    "dynamic_variables": {"customer_tier": "gold", "system__call_sid": "CA" + "ab" * 16},
    "source_info": {"source": "python_sdk", "version": "2.78.0"},
}


def agent_url(server: EmulatorServer, agent_id: str = "agent_x") -> str:
    return f"{server.ws_url}/v1/convai/conversation?agent_id={agent_id}"


def monitor_url(server: EmulatorServer, conversation_id: str) -> str:
    return f"{server.ws_url}/v1/convai/conversations/{conversation_id}/monitor"


async def next_event(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """The next event of one type, skipping (and answering) pings."""
    while True:
        event: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if event["type"] == kind:
            return event
        if event["type"] == "ping":
            await ws.send(json.dumps({"type": "pong", "event_id": event["ping_event"]["event_id"]}))


def said(emu: Emulator, conversation_id: str, message: str) -> bool:
    """Whether the emulator's transcript of the conversation holds `message` yet."""
    conversation = emu.conversation(conversation_id) or {}
    return any(t.get("message") == message for t in conversation.get("transcript") or [])


async def until(condition: Callable[[], bool]) -> None:
    """Wait for the server's thread to get there (a monitor command and an agent-socket message
    travel on different sockets: nothing orders them but this)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the server never got there")


async def drain(ws: ClientConnection) -> None:
    """Read until the server closes the socket."""
    while True:
        await asyncio.wait_for(ws.recv(), 5)


async def start(ws: ClientConnection, first: dict[str, Any] | None = INIT) -> str:
    if first is not None:
        await ws.send(json.dumps(first))
    meta = await next_event(ws, "conversation_initiation_metadata")
    conversation_id: str = meta["conversation_initiation_metadata_event"]["conversation_id"]
    return conversation_id


async def test_agent_socket_starts_a_live_conversation(
    emu: Emulator, server: EmulatorServer
) -> None:
    async with connect(agent_url(server)) as ws:
        conversation_id = await start(ws)
        conversation = emu.conversation(conversation_id)
        assert conversation is not None
        assert conversation["status"] == "in-progress"
        variables = conversation["conversation_initiation_client_data"]["dynamic_variables"]
        assert variables["customer_tier"] == "gold"
        assert variables["system__conversation_id"] == conversation_id
        assert conversation["metadata"]["conversation_initiation_source"] == "python_sdk"
        await ws.send(json.dumps({"type": "user_message", "text": "Where is my order?"}))
        reply = await next_event(ws, "agent_response")
        assert reply["agent_response_event"]["agent_response"] == emu.agent_reply
        await ws.send(json.dumps({"type": "contextual_update", "text": "VIP"}))
        # The new conversation is listed and found by its call SID like any other.
        async with httpx.AsyncClient(base_url=server.base_url, headers={"xi-api-key": KEY}) as http:
            sid = INIT["dynamic_variables"]["system__call_sid"]  # type: ignore[index]
            page = await http.get(
                LIST, params={"dynamic_variable_filter": f"system__call_sid:eq:{sid}"}
            )
            assert [c["conversation_id"] for c in page.json()["conversations"]] == [conversation_id]
            got = (await http.get(f"{LIST}/{conversation_id}")).json()
            assert [t["role"] for t in got["transcript"]] == ["user", "agent"]
    await asyncio.sleep(0.05)
    assert emu.conversation(conversation_id)["status"] == "done"  # type: ignore[index]
    types = [e["type"] for e in emu.session_events(conversation_id) if e["type"] != "pong"]
    assert types == ["conversation_initiation_client_data", "user_message", "contextual_update"]
    assert emu.count("agent_ws") == 1


async def test_initiation_data_is_optional(emu: Emulator, server: EmulatorServer) -> None:
    async with connect(agent_url(server)) as ws:
        conversation_id = await start(ws, {"type": "user_message", "text": "hi"})
        await next_event(ws, "agent_response")  # the first message was still answered
    assert emu.session_events(conversation_id)[0]["type"] == "user_message"
    emu.initiation_timeout = 0.05
    async with connect(agent_url(server)) as ws:
        assert (await start(ws, None)).startswith("conv_")  # metadata without any message


async def test_signed_urls_are_accepted_until_expiry_and_refused_when_altered(
    emu: Emulator, server: EmulatorServer
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, headers={"xi-api-key": KEY}) as http:
        signed = (await http.get("/v1/convai/conversation/get-signed-url?agent_id=agent_x")).json()
    url = signed["signed_url"] + "&source=python_sdk&version=2.78.0"  # what the SDK appends
    async with connect(url) as ws:
        conversation_id = await start(ws)
    assert emu.conversation(conversation_id)["metadata"]["authorization_method"] == "signed_url"  # type: ignore[index]
    tampered = url.replace("conversation_signature=", "conversation_signature=x")
    other_agent = url.replace("agent_id=agent_x", "agent_id=agent_y")
    for bad in (tampered, other_agent):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(bad):
                pass
        assert refused.value.response.status_code == 403
    real_clock = emu.clock
    emu.clock = lambda: real_clock() + emu.signed_url_ttl + 1
    with pytest.raises(InvalidStatus):
        async with connect(url):
            pass
    emu.clock = lambda: real_clock() + emu.signed_url_ttl - 5  # still within 15 minutes
    async with connect(url) as ws:
        await start(ws)


async def test_private_agents_need_a_signed_url(emu: Emulator, server: EmulatorServer) -> None:
    emu.require_signed_url = True
    with pytest.raises(InvalidStatus):
        async with connect(agent_url(server)):
            pass
    with pytest.raises(InvalidStatus):
        async with connect(f"{server.ws_url}/v1/convai/conversation"):
            pass
    token = emu.sign("agent_x")
    async with connect(agent_url(server) + f"&conversation_signature={token}") as ws:
        await start(ws)
    assert [r.status for r in emu.requests.of("agent_ws")] == [403, 403, 101]


async def test_pings_expect_pongs_and_missed_ones_are_recorded(
    emu: Emulator, server: EmulatorServer
) -> None:
    emu.ping_interval = 0.02
    async with connect(agent_url(server)) as ws:
        conversation_id = await start(ws)
        session = emu.session(conversation_id)
        answered = []
        for _ in range(3):
            ping = await next_event(ws, "ping")
            answered.append(ping["ping_event"]["event_id"])
            await ws.send(json.dumps({"type": "pong", "event_id": answered[-1]}))
        ignored = [(await next_event(ws, "ping"))["ping_event"]["event_id"] for _ in range(3)]
        await asyncio.sleep(0.01)
    assert set(answered) <= set(session.pongs)
    assert set(ignored[:-1]) <= set(session.missed_pongs)
    assert not set(answered) & set(session.missed_pongs)


async def test_client_tool_round_trip(emu: Emulator, server: EmulatorServer) -> None:
    async with connect(agent_url(server)) as ws:
        conversation_id = await start(ws)
        # The test's loop is not the server's: the emulator hands the send over.
        tool_call_id = await emu.call_client_tool(conversation_id, "get_weather", {"city": "Paris"})
        call = (await next_event(ws, "client_tool_call"))["client_tool_call"]
        assert (call["tool_call_id"], call["tool_name"], call["parameters"]) == (
            tool_call_id,
            "get_weather",
            {"city": "Paris"},
        )
        result = {
            "type": "client_tool_result",
            "tool_call_id": tool_call_id,
            "result": "sunny",
            "is_error": False,
        }
        await ws.send(json.dumps(result))
        assert await emu.session(conversation_id).wait_for_tool_result(tool_call_id) == result
        # And from a synchronous test (a thread without a loop).
        second = await asyncio.to_thread(emu.call_client_tool_sync, conversation_id, "ping_crm")
        assert (await next_event(ws, "client_tool_call"))["client_tool_call"][
            "tool_call_id"
        ] == second
        assert emu.tool_results(conversation_id, second) == []


async def test_unreadable_messages_close_the_socket_with_1008(server: EmulatorServer) -> None:
    async with connect(agent_url(server)) as ws:
        await start(ws)
        await ws.send("not json")
        with pytest.raises(ConnectionClosed) as closed:
            await next_event(ws, "never")
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


# -- monitor --------------------------------------------------------------------------------------
async def test_monitor_needs_a_key(emu: Emulator, server: EmulatorServer) -> None:
    for headers in ({}, {"xi-api-key": ""}):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(monitor_url(server, LIVE_ID), additional_headers=headers):
                pass
        assert refused.value.response.status_code == 403
    assert emu.count("monitor_ws") == 2


async def test_monitor_replays_forwards_and_records_commands(
    emu: Emulator, server: EmulatorServer
) -> None:
    async with connect(agent_url(server)) as agent:
        conversation_id = await start(agent)
        await agent.send(json.dumps({"type": "user_message", "text": "hi"}))
        await next_event(agent, "agent_response")
        headers = {"xi-api-key": KEY}
        async with connect(monitor_url(server, conversation_id), additional_headers=headers) as mon:
            replayed = [json.loads(await mon.recv()) for _ in range(4)]
            assert [e["type"] for e in replayed] == [
                "connected",
                "conversation_initiation_metadata",
                "agent_response",
                "history_complete",
            ]
            await agent.send(json.dumps({"type": "user_message", "text": "again"}))
            forwarded = json.loads(await asyncio.wait_for(mon.recv(), 5))
            assert forwarded["type"] == "agent_response"
            update = {
                "command_type": "contextual_update",
                "parameters": {"contextual_update": "VIP"},
            }
            transfer = {
                "command_type": "transfer_to_number",
                "parameters": {"phone_number": "+15550100999"},
            }
            await mon.send(json.dumps(update))
            await mon.send(json.dumps(transfer))
            await mon.send(json.dumps({"command_type": "end_call"}))
            with pytest.raises(ConnectionClosed):
                await drain(mon)
        with pytest.raises(ConnectionClosed):  # end_call hung up the call itself
            await next_event(agent, "never")
    assert emu.monitor_commands[conversation_id] == [update, transfer, {"command_type": "end_call"}]
    assert emu.conversation(conversation_id)["status"] == "done"  # type: ignore[index]


async def test_monitor_of_a_call_held_by_elevenlabs_replays_its_transcript(
    emu: Emulator, server: EmulatorServer
) -> None:
    async with connect(monitor_url(server, LIVE_ID), additional_headers={"xi-api-key": KEY}) as mon:
        opening = [json.loads(await mon.recv())["type"] for _ in range(4)]
        assert opening == ["connected", "agent_response", "user_transcript", "history_complete"]
        await mon.send(
            json.dumps(
                {"command_type": "contextual_update", "parameters": {"contextual_update": "x"}}
            )
        )
        await mon.send(json.dumps({"command_type": "end_call"}))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(mon.recv(), 5)
    assert len(emu.monitor_commands[LIVE_ID]) == 2
    assert emu.conversation(LIVE_ID)["status"] == "done"  # type: ignore[index]


@pytest.mark.parametrize(
    "refusal", ["plan", "scope", "role", "monitoring_disabled", "conversation_over"]
)
async def test_monitor_refusals_close_1008_with_the_reason(
    emu: Emulator, server: EmulatorServer, refusal: Any
) -> None:
    emu.monitor_refusal = refusal
    async with connect(monitor_url(server, LIVE_ID), additional_headers={"xi-api-key": KEY}) as mon:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(mon.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason.startswith(f"{refusal}: ")
    assert LIVE_ID not in emu.monitor_commands


@pytest.mark.parametrize("conversation_id", [DONE_ID, "conv_unknown"])
async def test_monitor_of_a_finished_or_unknown_conversation_is_conversation_over(
    server: EmulatorServer, conversation_id: str
) -> None:
    url = monitor_url(server, conversation_id)
    async with connect(url, additional_headers={"xi-api-key": KEY}) as mon:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(mon.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.reason.startswith("conversation_over: ")


# -- what the official clients expect (docs/protocol.md §12) ----------------------------------
async def test_the_convai_subprotocol_is_answered_when_offered(
    emu: Emulator, server: EmulatorServer
) -> None:
    async with connect(agent_url(server), subprotocols=[Subprotocol("convai")]) as ws:
        assert ws.subprotocol == "convai"
        conversation_id = await start(ws)
    assert emu.session(conversation_id).subprotocol == "convai"
    async with connect(agent_url(server)) as ws:  # offered none: answered none
        assert ws.subprotocol is None
        await start(ws)


async def test_a_bearer_token_subprotocol_authorizes_a_private_agent(
    emu: Emulator, server: EmulatorServer
) -> None:
    emu.require_signed_url = True
    token = emu.sign("agent_x")
    offered = [Subprotocol("convai"), Subprotocol(f"bearer.{token}")]
    async with connect(agent_url(server), subprotocols=offered) as ws:
        assert ws.subprotocol == "convai"  # the token is never echoed back
        conversation_id = await start(ws)
    metadata = emu.conversation(conversation_id)["metadata"]  # type: ignore[index]
    assert metadata["authorization_method"] == "authorization_header"
    forged = [Subprotocol("convai"), Subprotocol(f"bearer.{token}x")]
    with pytest.raises(InvalidStatus) as refused:
        async with connect(agent_url(server), subprotocols=forged):
            pass
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("result", [{"temp": 21}, ["a"], 3, None])
async def test_the_observed_profile_refuses_a_non_string_tool_result(
    emu: Emulator, server: EmulatorServer, result: Any
) -> None:
    emu.profile = "observed"
    async with connect(agent_url(server)) as ws:
        conversation_id = await start(ws)
        tool_call_id = await emu.call_client_tool(conversation_id, "get_weather", {})
        await next_event(ws, "client_tool_call")
        answer = {"type": "client_tool_result", "tool_call_id": tool_call_id, "result": result}
        await ws.send(json.dumps(answer | {"is_error": False}))
        error = await next_event(ws, "error")
        with pytest.raises(ConnectionClosed) as closed:
            await drain(ws)
    assert error["error_event"]["error_type"] == "invalid_message"
    assert error["error_event"]["code"] == 1008
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


async def test_the_documented_profile_records_a_non_string_tool_result(
    emu: Emulator, server: EmulatorServer
) -> None:
    async with connect(agent_url(server)) as ws:
        conversation_id = await start(ws)
        tool_call_id = await emu.call_client_tool(conversation_id, "get_weather", {})
        await next_event(ws, "client_tool_call")
        answer = {"type": "client_tool_result", "tool_call_id": tool_call_id, "result": {"a": 1}}
        await ws.send(json.dumps(answer | {"is_error": False}))
        found = await emu.session(conversation_id).wait_for_tool_result(tool_call_id)
    assert found["result"] == {"a": 1}


async def test_monitor_opens_with_connected_and_closes_the_replay_with_history_complete(
    emu: Emulator, server: EmulatorServer
) -> None:
    url = monitor_url(server, LIVE_ID) + "?events_format=json"
    async with connect(url, additional_headers={"xi-api-key": KEY}) as mon:
        types = [json.loads(await mon.recv())["type"] for _ in range(4)]
    assert types[0] == "connected"
    assert types[-1] == "history_complete"


@pytest.mark.parametrize("events_format", ["opentelemetry", "xml"])
async def test_monitor_events_formats_the_emulator_does_not_serve_are_refused(
    server: EmulatorServer, events_format: str
) -> None:
    url = monitor_url(server, LIVE_ID) + f"?events_format={events_format}"
    async with connect(url, additional_headers={"xi-api-key": KEY}) as mon:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(mon.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    kind = "unsupported" if events_format == "opentelemetry" else "invalid_request"
    assert closed.value.rcvd.reason.startswith(f"{kind}: ")


async def test_monitor_takes_an_authorization_bearer_header(
    emu: Emulator, server: EmulatorServer
) -> None:
    emu.api_key = KEY
    bearer = {"Authorization": f"Bearer {KEY}"}
    async with connect(monitor_url(server, LIVE_ID), additional_headers=bearer) as mon:
        assert json.loads(await mon.recv())["type"] == "connected"
    for wrong in ({"Authorization": "Bearer nope"}, {"Authorization": f"Basic {KEY}"}):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(monitor_url(server, LIVE_ID), additional_headers=wrong):
                pass
        assert refused.value.response.status_code == 403


async def test_monitor_refuses_a_conversation_that_has_not_begun(
    emu: Emulator, server: EmulatorServer
) -> None:
    emu.conversation(LIVE_ID)["status"] = "initiated"  # type: ignore[index]
    url = monitor_url(server, LIVE_ID)
    async with connect(url, additional_headers={"xi-api-key": KEY}) as mon:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(mon.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.reason.startswith("not_started: ")


async def test_human_takeover_silences_the_agent_and_speaks_for_it(
    emu: Emulator, server: EmulatorServer
) -> None:
    async with connect(agent_url(server)) as agent:
        conversation_id = await start(agent)
        headers = {"xi-api-key": KEY}
        async with connect(monitor_url(server, conversation_id), additional_headers=headers) as mon:
            while json.loads(await mon.recv())["type"] != "history_complete":
                pass
            await mon.send(
                json.dumps({"command_type": "send_human_message", "parameters": {"text": "early"}})
            )
            await mon.send(json.dumps({"command_type": "enable_human_takeover"}))
            await until(lambda: emu.session(conversation_id).human_takeover)
            await agent.send(json.dumps({"type": "user_message", "text": "is anyone there?"}))
            await until(lambda: said(emu, conversation_id, "is anyone there?"))
            human = {"command_type": "send_human_message", "parameters": {"text": "Hi, Ada here."}}
            await mon.send(json.dumps(human))
            reply = await next_event(agent, "agent_response")
            assert reply["agent_response_event"]["agent_response"] == "Hi, Ada here."
            await mon.send(json.dumps({"command_type": "disable_human_takeover"}))
            await until(lambda: not emu.session(conversation_id).human_takeover)
            await agent.send(json.dumps({"type": "user_message", "text": "thanks"}))
            back = await next_event(agent, "agent_response")
            assert back["agent_response_event"]["agent_response"] == emu.agent_reply
        got = emu.conversation(conversation_id)
        assert got is not None
        assert [(t["role"], t["message"]) for t in got["transcript"]] == [
            ("user", "is anyone there?"),
            ("agent", "Hi, Ada here."),
            ("user", "thanks"),
            ("agent", emu.agent_reply),
        ]
    kinds = [c["command_type"] for c in emu.monitor_commands[conversation_id]]
    assert kinds == [
        "send_human_message",
        "enable_human_takeover",
        "send_human_message",
        "disable_human_takeover",
    ]
