from __future__ import annotations

import pytest

from callsid_resolver import Conversation, ConversationsPage, Resolution, SignedUrl

from .conftest import recording


@pytest.mark.parametrize(
    ("name", "call_sid"),
    [
        ("conversation_twilio_inbound", "CAdeadbeef00000000000000000000beef"),
        ("conversation_twilio_inbound_in_progress", "CAdeadbeef000000000000000000000001"),
        ("conversation_twilio_outbound", "CAfeedface00000000000000000000f00d"),
        ("conversation_web_widget", None),
    ],
)
def test_recorded_conversations_parse_with_their_call_sid(name: str, call_sid: str | None) -> None:
    conv = Conversation.model_validate(recording(name))
    assert conv.call_sid == call_sid
    assert conv.conversation_id.startswith("conv_fake0")


def test_list_page_parses_and_keeps_unknown_fields() -> None:
    body = recording("conversations_list_page")
    body["conversations"][0]["brand_new_field"] = {"x": 1}
    body["new_top_level"] = True
    page = ConversationsPage.model_validate(body)
    assert [c.status for c in page.conversations] == ["in-progress", "done", "done"]
    assert page.conversations[0].is_live
    assert (page.conversations[0].model_extra or {})["brand_new_field"] == {"x": 1}
    assert page.next_cursor == "fake-opaque-cursor-0001"


def test_unknown_enum_values_and_providers_do_not_break_parsing() -> None:
    body = recording("conversation_twilio_inbound")
    body["status"] = "archived"
    body["metadata"]["conversation_initiation_source"] = "carrier_pigeon"
    body["metadata"]["phone_call"] = {"type": "vonage", "direction": "sideways", "call_sid": "V-1"}
    conv = Conversation.model_validate(body)
    assert (conv.status, conv.call_sid, conv.is_live) == ("archived", "V-1", False)


def test_call_sid_falls_back_to_the_dynamic_variable() -> None:
    body = recording("conversation_twilio_inbound")
    del body["metadata"]["phone_call"]["call_sid"]
    assert Conversation.model_validate(body).call_sid == "CAdeadbeef00000000000000000000beef"
    body["conversation_initiation_client_data"] = None
    assert Conversation.model_validate(body).call_sid is None


def test_reprs_hold_no_phone_numbers_or_signed_url_tokens() -> None:
    conv = Conversation.model_validate(recording("conversation_twilio_inbound"))
    assert "+1555" not in repr(conv)
    signed = SignedUrl.model_validate(recording("signed_url_response"))
    assert "FAKE-SIGNATURE-0001" not in repr(signed)
    assert "FAKE-SIGNATURE-0001" not in str(signed)


def test_resolution_from_a_conversation() -> None:
    conv = Conversation.model_validate(recording("conversation_twilio_outbound"))
    r = Resolution.from_conversation(conv, source="scan", requests=7)
    assert r.model_dump() == {
        "call_sid": "CAfeedface00000000000000000000f00d",
        "conversation_id": "conv_fake0outbound0twilio00000003",
        "agent_id": "agent_fake0example0agent0000000001",
        "status": "done",
        "start_time_unix_secs": 1786000000,
        "source": "scan",
        "requests": 7,
        "matched_by": "phone_call.call_sid",
    }
    web = Conversation.model_validate(recording("conversation_web_widget"))
    with pytest.raises(ValueError, match="no such call id"):
        Resolution.from_conversation(web, source="scan")
