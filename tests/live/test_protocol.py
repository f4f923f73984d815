"""The sans-I/O layer: client events encode to the recorded wire shapes, every recorded server
event parses, unknown and malformed messages pass through, URLs derive and redact, and the
monitor-refusal table maps each assumed refusal to its class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callsid_resolver import (
    ConversationOver,
    MonitoringDisabled,
    MonitorPlanRequired,
    MonitorRefused,
    MonitorScopeMissing,
)
from callsid_resolver._json import JsonRefused, loads_bounded
from callsid_resolver.live import (
    AgentResponse,
    ClientToolCall,
    ClientToolResult,
    ContextualUpdate,
    ConversationInitiation,
    ConversationInitiationMetadata,
    ErrorEvent,
    MonitorCommand,
    Ping,
    Pong,
    UnknownEvent,
    UserActivity,
    UserMessage,
    parse_server_event,
)
from callsid_resolver.live._protocol import agent_url, monitor_url, redact_url, ws_base_url
from callsid_resolver.live._refusals import classify, refusal_from_close, refusal_from_status
from callsid_resolver.live._transport import redact_text

MESSAGES = json.loads((Path(__file__).parents[1] / "recordings" / "ws_messages.json").read_text())


def recorded(direction: str, kind: str) -> dict[str, Any]:
    for entry in MESSAGES:
        message = entry["message"]
        if entry["direction"] == direction and kind in (
            message.get("type"),
            message.get("command_type"),
        ):
            return message  # type: ignore[no-any-return]
    raise LookupError(kind)


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (UserMessage(text="I would like to change my delivery address."), "user_message"),
        (
            ContextualUpdate(
                text="CRM: customer has an open ticket #4711 about a late delivery.",
                context_id="crm-ticket",
            ),
            "contextual_update",
        ),
        (
            ClientToolResult(tool_call_id="toolu_fake0001", result='{"status": "ok"}'),
            "client_tool_result",
        ),
        (UserActivity(), "user_activity"),
        (Pong(event_id=3), "pong"),
    ],
)
def test_client_events_encode_to_the_recorded_wire_shape(event: Any, kind: str) -> None:
    assert json.loads(event.to_json()) == recorded("client->server", kind)


def test_initiation_leaves_out_what_was_not_given() -> None:
    event = ConversationInitiation(dynamic_variables={"user_name": "visitor", "n": 3})
    assert json.loads(event.to_json()) == {
        "type": "conversation_initiation_client_data",
        "dynamic_variables": {"user_name": "visitor", "n": 3},
    }
    assert json.loads(ContextualUpdate(text="x").to_json()) == {
        "type": "contextual_update",
        "text": "x",
    }


def test_every_recorded_server_event_parses_into_its_model() -> None:
    server = [e["message"] for e in MESSAGES if e["direction"] == "server->client"]
    events = [parse_server_event(json.dumps(m)) for m in server]
    assert not [e for e in events if isinstance(e, UnknownEvent)]
    by_type = {e.type: e for e in events}
    meta = by_type["conversation_initiation_metadata"]
    assert isinstance(meta, ConversationInitiationMetadata)
    assert meta.conversation_id == "conv_fake0web0widget0000000000004"
    ping = parse_server_event(json.dumps(recorded("server->client", "ping")))
    assert isinstance(ping, Ping)
    assert (ping.event_id, ping.ping_ms) == (3, 42)
    call = by_type["client_tool_call"]
    assert isinstance(call, ClientToolCall)
    assert (call.tool_call_id, call.parameters) == ("toolu_fake0001", {"order_number": "A-1001"})
    assert isinstance(by_type["agent_response"], AgentResponse)
    error = by_type["error"]
    assert isinstance(error, ErrorEvent)
    assert (error.code, error.error_type) == (1008, "missing_dynamic_variable")
    assert meta.raw["type"] == "conversation_initiation_metadata"


@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "agent_typing", "agent_typing_event": {"is_typing": true}}',
        '{"type": "ping", "ping_event": {"event_id": "not-a-number"}}',
        '{"type": "client_tool_call"}',
        '{"no_type": 1}',
        "[1, 2]",
        "not json at all",
        b"\xff\xfe binary",
    ],
)
def test_unknown_or_malformed_messages_pass_through(raw: str | bytes) -> None:
    event = parse_server_event(raw)
    assert isinstance(event, UnknownEvent)
    assert event.raw


def test_monitor_commands_match_the_guide() -> None:
    assert json.loads(
        MonitorCommand.contextual_update("CRM: customer has an open ticket #4711.").to_json()
    ) == recorded("monitor->server", "contextual_update")
    assert json.loads(MonitorCommand.end_call().to_json()) == recorded(
        "monitor->server", "end_call"
    )
    assert json.loads(MonitorCommand.transfer_to_number("+15550100999").to_json()) == recorded(
        "monitor->server", "transfer_to_number"
    )
    with pytest.raises(ValueError, match="phone_number"):
        MonitorCommand.transfer_to_number("call me maybe")


def test_ws_urls_derive_from_the_rest_base_url() -> None:
    assert (
        ws_base_url("https://api.eu.residency.elevenlabs.io")
        == "wss://api.eu.residency.elevenlabs.io"
    )
    assert ws_base_url("http://127.0.0.1:8080/") == "ws://127.0.0.1:8080"
    assert agent_url("https://api.elevenlabs.io", "agent_1") == (
        "wss://api.elevenlabs.io/v1/convai/conversation?agent_id=agent_1"
    )
    assert monitor_url("http://h:1", "conv_1") == "ws://h:1/v1/convai/conversations/conv_1/monitor"
    with pytest.raises(ValueError, match="conversation id"):
        monitor_url("http://h:1", "../x/y")
    with pytest.raises(ValueError, match="base URL"):
        ws_base_url("ftp://h")


def test_redaction_masks_signatures_and_userinfo() -> None:
    url = "wss://user:pw@api.elevenlabs.io/v1/convai/conversation?agent_id=a1&conversation_signature=SECRET-1&token=SECRET-2"
    redacted = redact_url(url)
    assert "SECRET" not in redacted
    assert "pw" not in redacted
    assert "agent_id=a1" in redacted


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        ("plan", MonitorPlanRequired),
        ("scope", MonitorScopeMissing),
        ("monitoring_disabled", MonitoringDisabled),
        ("conversation_over", ConversationOver),
    ],
)
def test_refusal_table_maps_the_emulator_reasons(kind: str, cls: type[MonitorRefused]) -> None:
    error = refusal_from_close("conv_1", 1008, f"{kind}: some text")
    assert type(error) is cls
    assert error is not None
    assert error.refusal == kind
    assert error.close_code == 1008
    # The same kind said on the handshake, in the API's error-body convention.
    body = json.dumps({"detail": {"status": kind, "message": "no"}}).encode()
    by_status = refusal_from_status("conv_1", 403, body)
    assert type(by_status) is cls
    assert by_status.status_code == 403


def test_refusal_table_fallbacks() -> None:
    assert classify("Monitoring requires an Enterprise subscription") == "plan"
    assert classify("API key is missing the required scope") == "scope"
    assert classify("conversation has ended") == "conversation_over"
    assert refusal_from_close("c", 1011, "internal") is None  # a crash, not a refusal
    assert type(refusal_from_close("c", 1000, "")) is ConversationOver
    plain = refusal_from_close("c", 1008, "something else")
    assert type(plain) is MonitorRefused
    assert plain is not None
    assert plain.refusal == "policy"
    assert refusal_from_status("c", 401).refusal == "unauthorized"
    assert type(refusal_from_status("c", 404)) is ConversationOver
    assert refusal_from_status("c", 403).refusal == "forbidden"


# -- hardening (issue #15, items 10 and 14) ------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        "[" * 200_000,
        "[" * 200_000 + "]" * 200_000,
        '{"type":"ping","ping_event":' * 100_000,
        b"{" * 200_000,
        '{"type":"client_tool_call","client_tool_call":{"parameters":' + "[" * 70 + "]" * 70 + "}}",
    ],
)
def test_deep_nesting_is_an_unknown_event_not_a_recursion_error(frame: str | bytes) -> None:
    event = parse_server_event(frame)
    assert isinstance(event, UnknownEvent)
    assert event.type == ""


def test_nesting_within_the_bound_and_brackets_inside_strings_still_parse() -> None:
    text = "[" * 500 + '\\"[[[' + "{" * 200  # brackets inside a string do not count
    frame = {
        "type": "client_tool_call",
        "client_tool_call": {
            "tool_name": "t",
            "tool_call_id": "c",
            "parameters": {"deep": json.loads("[" * 60 + "]" * 60), "text": text},
        },
    }
    event = parse_server_event(json.dumps(frame))
    assert isinstance(event, ClientToolCall)
    assert event.parameters["text"] == text


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(
                st.sampled_from(["type", "ping_event", "event_id", "x"]) | st.text(max_size=5),
                children,
                max_size=3,
            )
        ),
        max_leaves=25,
    ).map(json.dumps)
    | st.text(max_size=200)
    | st.binary(max_size=200)
)
@settings(max_examples=300, deadline=None)
def test_parse_server_event_never_raises(frame: str | bytes) -> None:
    assert parse_server_event(frame).type is not None


@given(st.text('[]{}"\\ ,:a0', max_size=300), st.integers(1, 10))
@settings(max_examples=300, deadline=None)
def test_the_depth_scan_agrees_with_json_on_valid_json(text: str, limit: int) -> None:
    try:
        value = json.loads(text)
    except ValueError:
        return  # invalid JSON: whatever the scan says, json.loads refuses it after
    try:
        loads_bounded(text, max_depth=limit, max_size=10_000)
    except JsonRefused:
        assert _depth(value) > limit
    else:
        assert _depth(value) <= limit


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@pytest.mark.parametrize(
    "secret_query",
    [
        "signature=S3CRET",
        "sig=S3CRET",
        "xi_api_key=S3CRET",
        "conversation%5Fsignature=S3CRET",
        "conversation_signature=S3CRET",
        "token=S3CRET",
        "anything_new=S3CRET",
    ],
)
def test_the_log_redactor_masks_every_query_value_not_allowlisted(secret_query: str) -> None:
    text = f"> GET /v1/convai/conversation?agent_id=a1&{secret_query} HTTP/1.1"
    redacted = redact_text(text)
    assert "S3CRET" not in redacted
    assert "agent_id=a1" in redacted


@given(
    name=st.text(
        st.characters(codec="ascii", exclude_characters="=&;#? \t\r\n"), min_size=1, max_size=20
    ),
    value=st.text(
        st.characters(codec="ascii", exclude_characters="&;# \t\r\n"), min_size=8, max_size=30
    ),
)
@settings(max_examples=300, deadline=None)
def test_no_query_value_outside_the_allowlist_reaches_a_log(name: str, value: str) -> None:
    text = f"> GET /v1/convai/conversation?agent_id=a1&{name}={value} HTTP/1.1"
    shown = unquote_plus(name).lower() in {
        "agent_id",
        "source",
        "version",
        "environment",
        "branch_id",
    }
    assert (value in redact_text(text).split("&", 1)[1]) is shown or value in name
