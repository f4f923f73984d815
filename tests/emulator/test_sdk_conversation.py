"""The official Python SDK's `Conversation` (elevenlabs 2.78, text-only: no audio interface)
holds a session with the emulator over a real loopback socket: a user message and the agent's
response, a contextual update, user activity, pings, and a client tool round trip.

Also what the SDK does that the API's schema does not allow: it sends a client tool's dict result
as a JSON object, where the AsyncAPI requires a string (docs/protocol.md §8, §12). The
documented emulator records it; under the observed profile it is refused as the API refuses an
invalid message (`error` event `invalid_message`, close 1008).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from elevenlabs import ElevenLabs

from callsid_resolver.testing import Emulator, EmulatorServer

with warnings.catch_warnings():
    # The SDK's module names websockets' deprecated legacy client class at import.
    warnings.simplefilter("ignore", DeprecationWarning)
    from elevenlabs.conversational_ai.conversation import ClientTools, Conversation

from .conftest import KEY

AGENT = "agent_fake0example0agent0000000001"


def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.01)


def start(
    server: EmulatorServer, tools: ClientTools, replies: list[str], ended: threading.Event
) -> Conversation:
    sdk = ElevenLabs(api_key=KEY, base_url=server.base_url)
    conversation = Conversation(
        sdk,
        AGENT,
        requires_auth=False,
        client_tools=tools,
        callback_agent_response=replies.append,
        callback_disconnect=lambda details: ended.set(),
    )
    conversation.start_session()
    wait_for(lambda: conversation._conversation_id is not None)
    return conversation


def test_the_python_sdk_conversation_round_trip(emu: Emulator, server: EmulatorServer) -> None:
    emu.ping_interval = 0.05
    tools = ClientTools()
    seen: list[dict[str, Any]] = []

    def lookup(parameters: dict[str, Any]) -> str:
        seen.append(parameters)
        return "shipped"

    tools.register("lookup_order", lookup)
    replies: list[str] = []
    ended = threading.Event()
    conversation = start(server, tools, replies, ended)
    try:
        cid = conversation._conversation_id
        assert cid is not None
        conversation.send_user_message("Where is my order?")
        wait_for(lambda: replies == [emu.agent_reply])
        conversation.send_contextual_update("CRM: VIP caller")
        conversation.register_user_activity()
        call_id = emu.call_client_tool_sync(cid, "lookup_order", {"order_id": "A-1"})
        session = emu.session(cid)
        wait_for(lambda: session.tool_results(call_id) and session.pongs)
    finally:
        conversation.end_session()
        conversation.wait_for_session_end()
        tools.stop()
    assert seen == [{"order_id": "A-1", "tool_call_id": call_id}]  # the SDK adds the call's id
    kinds = [e["type"] for e in session.events if e["type"] != "pong"]
    assert kinds == [
        "conversation_initiation_client_data",
        "user_message",
        "contextual_update",
        "user_activity",
        "client_tool_result",
    ]
    assert session.tool_results(call_id)[0]["result"] == "shipped"
    assert session.missed_pongs == []
    wait_for(lambda: not session.live)
    assert emu.conversation(cid)["status"] == "done"  # type: ignore[index]


@pytest.mark.parametrize("profile", ["documented", "observed"])
def test_the_python_sdk_sends_a_dict_tool_result_as_an_object(
    emu: Emulator, server: EmulatorServer, profile: str
) -> None:
    emu.profile = profile
    tools = ClientTools()
    tools.register("lookup_order", lambda parameters: {"status": "shipped"})
    ended = threading.Event()
    conversation = start(server, tools, [], ended)
    try:
        cid = conversation._conversation_id
        assert cid is not None
        call_id = emu.call_client_tool_sync(cid, "lookup_order", {})
        session = emu.session(cid)
        wait_for(lambda: session.tool_results(call_id))
        result = session.tool_results(call_id)[0]["result"]
        assert result == {"status": "shipped"}  # an object on the wire, not a string
        if profile == "observed":
            wait_for(lambda: not session.live)  # refused: error event, close 1008
            errors = [e for e in session.sent if e["type"] == "error"]
            assert errors[0]["error_event"]["error_type"] == "invalid_message"
        else:
            assert session.live
    finally:
        conversation.end_session()
        conversation.wait_for_session_end()
        tools.stop()
