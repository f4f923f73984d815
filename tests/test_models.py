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


def test_null_dynamic_variables_read_as_none() -> None:
    body = recording("conversation_twilio_inbound")
    body["conversation_initiation_client_data"]["dynamic_variables"] = None
    conv = Conversation.model_validate(body)
    assert conv.conversation_initiation_client_data is not None
    assert conv.conversation_initiation_client_data.dynamic_variables == {}
    assert conv.call_sid == "CAdeadbeef00000000000000000000beef"  # from the phone record


def test_numeric_and_null_system_variables_parse() -> None:
    body = recording("conversation_twilio_inbound")
    del body["metadata"]["phone_call"]
    body["conversation_initiation_client_data"]["dynamic_variables"] |= {
        "system__call_duration_secs": 158,
        "system__is_agent_transfer": False,
        "system__user_id": None,
        "system__call_id": None,
    }
    conv = Conversation.model_validate(body)
    assert conv.call_ids == {"system__call_sid": "CAdeadbeef00000000000000000000beef"}


def test_a_sip_conversation_shows_every_id_and_says_which_matched() -> None:
    body = recording("conversation_twilio_inbound")
    body["metadata"]["phone_call"] |= {
        "type": "sip_trunking",
        "call_sid": "7f1e9a52-3c1d-4c8e-9f00-5a1b2c3d4e5f",
        "call_id": "a84b4c76e66710@[2001:db8::1]",
    }
    body["conversation_initiation_client_data"]["dynamic_variables"] |= {
        "system__call_sid": None,
        "system__call_id": "a84b4c76e66710@[2001:db8::1]",
    }
    conv = Conversation.model_validate(body)
    assert conv.call_ids == {
        "phone_call.call_sid": "7f1e9a52-3c1d-4c8e-9f00-5a1b2c3d4e5f",
        "phone_call.call_id": "a84b4c76e66710@[2001:db8::1]",
        "system__call_id": "a84b4c76e66710@[2001:db8::1]",
    }
    r = Resolution.from_conversation(conv, source="scan", call_id="a84b4c76e66710@[2001:db8::1]")
    assert (r.call_sid, r.matched_by) == ("a84b4c76e66710@[2001:db8::1]", "phone_call.call_id")
    with pytest.raises(ValueError, match="no such call id"):
        Resolution.from_conversation(conv, source="scan", call_id="CA" + "0" * 32)
