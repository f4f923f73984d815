"""The agent and monitoring sockets' behaviour driven directly, without Starlette or a server.

`_agent` and `_monitor` are functions of the emulator's state that say what to send and when to
close; these tests play the client's side of docs/protocol.md §8 and §11 by calling them.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest

from callsid_resolver.testing import OBSERVED, Session
from callsid_resolver.testing._agent import (
    MAIN_PROTOCOL,
    POLICY_VIOLATION,
    Handshake,
    finish,
    next_ping,
    open_agent_socket,
    parse_client_message,
    receive,
    start_session,
)
from callsid_resolver.testing._monitor import on_command, open_monitor
from callsid_resolver.testing._settings import Settings
from callsid_resolver.testing._signing import sign
from callsid_resolver.testing._state import EmulatorState

Json = dict[str, Any]
KEY = "test-key"
INIT = {
    "type": "conversation_initiation_client_data",
    "dynamic_variables": {"customer_tier": "gold"},
    "source_info": {"source": "python_sdk", "version": "2.78.0"},
}


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> EmulatorState:
    return EmulatorState(api_key=KEY, clock=clock)


def accept(state: EmulatorState, **params: str) -> Handshake:
    handshake = open_agent_socket(state, list(({"agent_id": "agent_x"} | params).items()), [])
    assert handshake.accepted
    return handshake


def test_the_handshake_answers_convai_and_logs_each_attempt(state: EmulatorState) -> None:
    offered = ["bearer.nope", MAIN_PROTOCOL]
    public = open_agent_socket(state, [("agent_id", "agent_x")], [MAIN_PROTOCOL])
    refused = open_agent_socket(state, [("agent_id", "agent_x")], offered)  # a bad token
    anonymous = open_agent_socket(state, [], [])

    assert (public.accepted, public.subprotocol, public.authorization) == (
        True,
        MAIN_PROTOCOL,
        "public",
    )
    assert not refused.accepted
    assert not anonymous.accepted
    assert [r.status for r in state.requests.of("agent_ws")] == [101, 403, 403]


def test_a_signed_url_works_until_it_expires(state: EmulatorState, clock: Clock) -> None:
    token = sign(state, "agent_x")
    state.settings.require_signed_url = True

    assert not open_agent_socket(state, [("agent_id", "agent_x")], []).accepted
    signed = [("agent_id", "agent_x"), ("conversation_signature", token)]
    assert open_agent_socket(state, signed, []).authorization == "signed_url"
    bearer = open_agent_socket(state, [("agent_id", "agent_x")], [f"bearer.{token}"])
    assert bearer.authorization == "authorization_header"
    assert not open_agent_socket(state, [("agent_id", "agent_y")], [f"bearer.{token}"]).accepted
    clock.now += state.settings.signed_url_ttl + 1
    assert not open_agent_socket(state, signed, []).accepted


def test_the_initiation_data_starts_an_in_progress_conversation(
    state: EmulatorState, clock: Clock
) -> None:
    session, opening = start_session(state, accept(state), INIT)

    conversation = state.conversation(session.conversation_id)
    assert conversation is not None
    assert conversation["status"] == "in-progress"
    variables = conversation["conversation_initiation_client_data"]["dynamic_variables"]
    assert variables["customer_tier"] == "gold"
    assert variables["system__conversation_id"] == session.conversation_id
    assert conversation["metadata"]["conversation_initiation_source"] == "python_sdk"
    assert [e["type"] for e in opening.events] == ["conversation_initiation_metadata"]
    event = opening.events[0]["conversation_initiation_metadata_event"]
    assert event["conversation_id"] == session.conversation_id
    assert opening.close is None
    assert session.events == [INIT]


def test_a_first_message_that_is_not_initiation_is_answered(state: EmulatorState) -> None:
    said = {"type": "user_message", "text": "hello"}
    session, opening = start_session(state, accept(state, source="js_sdk"), said)

    kinds = [e["type"] for e in opening.events]
    assert kinds == ["conversation_initiation_metadata", "agent_response"]
    conversation = state.conversation(session.conversation_id) or {}
    assert conversation["metadata"]["conversation_initiation_source"] == "js_sdk"


def test_a_user_message_gets_the_agent_reply_in_the_transcript(state: EmulatorState) -> None:
    state.settings.agent_reply = "One moment."
    session, _ = start_session(state, accept(state), None)

    reaction = receive(state, session, {"type": "user_message", "text": "Where is my order?"})

    assert reaction.close is None
    assert [e["agent_response_event"]["agent_response"] for e in reaction.events] == ["One moment."]
    transcript = (state.conversation(session.conversation_id) or {})["transcript"]
    assert [(t["role"], t["message"]) for t in transcript] == [
        ("user", "Where is my order?"),
        ("agent", "One moment."),
    ]


def test_a_strict_profile_closes_on_a_tool_result_that_is_not_text(state: EmulatorState) -> None:
    result = {"type": "client_tool_result", "tool_call_id": "t1", "result": {"ok": True}}
    session, _ = start_session(state, accept(state), None)
    assert receive(state, session, result).close is None  # documented: accepted

    state.settings.profile = OBSERVED
    reaction = receive(state, session, result)

    assert reaction.close == (POLICY_VIOLATION, "invalid_message")
    assert reaction.events[0]["error_event"]["error_type"] == "invalid_message"


def test_pongs_are_matched_to_pings(state: EmulatorState) -> None:
    session, _ = start_session(state, accept(state), None)
    pings = [next_ping(session)["ping_event"]["event_id"] for _ in range(3)]

    receive(state, session, {"type": "pong", "event_id": pings[1]})

    assert session.missed_pongs == [pings[0]]  # the newest may still be on its way


def test_closing_ends_the_conversation_on_the_clock(state: EmulatorState, clock: Clock) -> None:
    session, _ = start_session(state, accept(state), None)
    clock.now += 42

    finish(state, session)

    conversation = state.conversation(session.conversation_id) or {}
    assert (conversation["status"], conversation["metadata"]["call_duration_secs"]) == ("done", 42)
    assert not session.live


def test_a_monitor_takes_over_and_ends_the_call(state: EmulatorState) -> None:
    session, _ = start_session(state, accept(state), None)
    cid = session.conversation_id
    headers = {"authorization": f"Bearer {KEY}"}

    assert not open_monitor(state, cid, [], {"xi-api-key": "wrong"}).accepted
    opening = open_monitor(state, cid, [], headers)
    assert [e["type"] for e in opening.events] == ["connected", "history_complete"]

    on_command(state, cid, {"command_type": "enable_human_takeover"})
    assert receive(state, session, {"type": "user_message", "text": "hi"}).events == []
    human = {"command_type": "send_human_message", "parameters": {"text": "A human here."}}
    reaction = on_command(state, cid, human)
    assert reaction.to_agent[0]["agent_response_event"]["agent_response"] == "A human here."

    ended = on_command(state, cid, {"command_type": "end_call"})
    assert (ended.close_agent, ended.close_monitor) == ((1000, "end_call"), (1000, "call ended"))
    assert (state.conversation(cid) or {})["status"] == "done"
    assert len(state.monitor_commands[cid]) == 3


def test_a_monitor_is_refused_by_name_when_forced(state: EmulatorState) -> None:
    session, _ = start_session(state, accept(state), None)
    state.settings.monitor_refusal = "scope"

    opening = open_monitor(state, session.conversation_id, [], {"xi-api-key": KEY})

    assert opening.accepted
    assert opening.close is not None
    assert opening.close[0] == POLICY_VIOLATION
    assert opening.close[1].startswith("scope: ")


def test_unreadable_frames_are_refused() -> None:
    assert parse_client_message('{"type": "pong"}') == {"type": "pong"}
    assert parse_client_message("[1, 2]") is None
    assert parse_client_message("not json") is None


class FakeLink:
    def __init__(self) -> None:
        self.frames: list[str] = []
        self.closed: tuple[int, str] | None = None

    @property
    def connected(self) -> bool:
        return self.closed is None

    async def send_text(self, text: str) -> None:
        self.frames.append(text)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def test_a_session_sends_through_its_link_and_to_its_monitors() -> None:
    session, link, watched = Session("conv_x"), FakeLink(), list[Json]()

    async def watch(event: Json) -> None:
        watched.append(event)

    async def scenario() -> None:
        session.attach(link, asyncio.get_running_loop())
        session.monitors.append(watch)
        await session.call_client_tool("lookup", {"q": 1})
        await session.send(next_ping(session))
        await session.close(1000, "bye")

    asyncio.run(scenario())

    assert len(link.frames) == 2
    assert link.closed == (1000, "bye")
    assert [e["type"] for e in watched] == ["client_tool_call"]  # pings are not forwarded


def test_the_behaviour_modules_import_no_web_framework() -> None:
    modules = "_agent", "_monitor", "_http", "_state", "_settings", "_session"
    imports = "; ".join(f"import callsid_resolver.testing.{m}" for m in modules)
    code = f"import sys; {imports}; print(sorted(m for m in sys.modules if 'starlette' in m))"
    # The package's __init__ imports the fronts; load the modules on their own instead.
    loader = (
        "import importlib.util, sys, types; "
        "import callsid_resolver; "
        "pkg = types.ModuleType('callsid_resolver.testing'); "
        "pkg.__path__ = [callsid_resolver.__path__[0] + '/testing']; "
        "sys.modules['callsid_resolver.testing'] = pkg; "
    )
    out = subprocess.run(
        [sys.executable, "-c", loader + code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_settings_are_checked_when_set_in_python_too() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="monitor_refusal"):
        settings.monitor_refusal = "enterprise"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="fail_status"):
        settings.apply({"latency": 0.5, "fail_status": 200})
    assert (settings.latency, settings.fail_status) == (0.0, 503)  # nothing was applied
    with pytest.raises(ValueError, match="signed_url_ttl"):
        settings.apply({"signed_url_ttl": 1})  # in-process only
