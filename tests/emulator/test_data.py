"""Recordings, the synthetic generator, scrubbing and record mode."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from elevenlabs.types import GetConversationResponseModel

from callsid_resolver.testing import (
    Emulator,
    conversation_at_depth,
    list_recordings,
    load_recording,
    load_recording_file,
    newest_first,
    record_conversations,
    scrub_conversation,
    synthetic_conversations,
)

from .conftest import API, KEY, LIST, example

CONV_ID = re.compile(r"conv_[a-z0-9]{28}")
TWILIO_SID = re.compile(r"CA[0-9a-f]{32}")


def test_bundled_recordings_are_listed_and_loaded() -> None:
    assert {"default", "sip_trunk", "live_calls", "web_only"} <= set(list_recordings())
    default = load_recording("default")
    kinds = {((c["metadata"].get("phone_call") or {}).get("type"), c["status"]) for c in default}
    assert kinds == {
        ("twilio", "in-progress"),
        ("twilio", "done"),
        ("sip_trunking", "done"),
        (None, "done"),
    }
    assert {c["conversation_id"] for c in default} >= {
        example(n)["conversation_id"]
        for n in (
            "conversation_twilio_inbound",
            "conversation_twilio_inbound_in_progress",
            "conversation_web_widget",
            "conversation_twilio_outbound",
        )
    }
    with pytest.raises(LookupError, match="bundled"):
        load_recording("nope")


def test_the_sip_trunk_recording_has_both_kinds_of_call_sid() -> None:
    sids = [c["metadata"]["phone_call"]["call_sid"] for c in load_recording("sip_trunk")]
    assert any(TWILIO_SID.fullmatch(s) for s in sids)
    assert any(not s.startswith("CA") for s in sids)


def test_bundled_recordings_hold_no_real_numbers_or_secrets() -> None:
    for name in list_recordings():
        text = json.dumps(load_recording(name))
        numbers = re.findall(r"\+\d{7,15}", text)
        assert all(n.startswith("+1555") for n in numbers), name
        assert "sk_" not in text
        assert "conversation_signature" not in text


def test_recording_files_round_trip_and_check_their_format(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"format": 1, "description": "x", "conversations": []}))
    assert load_recording_file(path) == []
    path.write_text(json.dumps({"format": 2, "conversations": []}))
    with pytest.raises(ValueError, match="format 2"):
        load_recording_file(path)


def test_synthetic_histories_are_deterministic_and_shaped_like_the_api() -> None:
    a = synthetic_conversations(3000, seed=9, live=4)
    assert a == synthetic_conversations(3000, seed=9, live=4)
    assert a != synthetic_conversations(3000, seed=10, live=4)
    assert len({c["conversation_id"] for c in a}) == 3000
    assert all(CONV_ID.fullmatch(c["conversation_id"]) for c in a)
    calls = [c["metadata"]["phone_call"] for c in a if c["metadata"].get("phone_call")]
    kinds = {(p["type"], p["direction"]) for p in calls}
    assert kinds == {("twilio", "inbound"), ("twilio", "outbound"), ("sip_trunking", "inbound")}
    assert all(TWILIO_SID.fullmatch(p["call_sid"]) for p in calls if p["type"] == "twilio")
    assert 0.7 < len(calls) / len(a) < 0.9  # phone_share 0.8
    web = [c for c in a if not c["metadata"].get("phone_call")]
    assert all(
        "system__call_sid" not in c["conversation_initiation_client_data"]["dynamic_variables"]
        for c in web
    )
    ordered = newest_first(a)
    assert [c["status"] for c in ordered[:4]] == ["in-progress"] * 4
    assert "in-progress" not in {c["status"] for c in ordered[4:]}
    assert (
        synthetic_conversations(50, phone_share=0.0, seed=1)[0]["metadata"].get("phone_call")
        is None
    )
    for conversation in a[:: 3000 // 60]:
        GetConversationResponseModel.model_validate(conversation)


def test_depth_helper_follows_the_listing_order() -> None:
    history = synthetic_conversations(500, seed=2)
    emu = Emulator(history)
    with httpx.Client(transport=emu.transport(), base_url=API, headers={"xi-api-key": KEY}) as c:
        rows = c.get(LIST, params={"page_size": 100}).json()["conversations"]
    assert conversation_at_depth(history, 1)["conversation_id"] == rows[0]["conversation_id"]
    assert conversation_at_depth(history, 57)["conversation_id"] == rows[56]["conversation_id"]
    phone = conversation_at_depth(history, 10, phone_only=True)
    assert phone["metadata"]["phone_call"]
    with pytest.raises(IndexError):
        conversation_at_depth(history, 501)


def test_a_100k_history_is_generated_and_paged_fast(record_property: pytest.RecordProperty) -> None:
    """Measured, not asserted: wall time depends on the machine."""
    started = time.perf_counter()
    history = synthetic_conversations(100_000, seed=1, live=5)
    generated = time.perf_counter() - started
    emu = Emulator(history)
    started = time.perf_counter()
    with httpx.Client(transport=emu.transport(), base_url=API, headers={"xi-api-key": KEY}) as c:
        params: dict[str, object] = {"page_size": 100}
        seen = 0
        while True:
            page = c.get(LIST, params=params).json()
            seen += len(page["conversations"])
            if not page["has_more"]:
                break
            params["cursor"] = page["next_cursor"]
        paged = time.perf_counter() - started
        started = time.perf_counter()
        target = conversation_at_depth(history, 75_000, phone_only=True)
        sid = target["metadata"]["phone_call"]["call_sid"]
        found = c.get(LIST, params={"dynamic_variable_filter": f"system__call_sid:eq:{sid}"})
        lookup = time.perf_counter() - started
    assert seen == 100_000
    assert found.json()["conversations"][0]["conversation_id"] == target["conversation_id"]
    record_property("generate_100k_s", round(generated, 3))
    record_property("page_100k_newest_first_s", round(paged, 3))
    record_property("filter_lookup_s", round(lookup, 4))
    print(f"generate 100k: {generated:.2f}s, 1000 pages newest first: {paged:.2f}s")


def test_scrubbing_fakes_numbers_and_masks_secrets() -> None:
    conversation = {
        "metadata": {
            "phone_call": {"external_number": "+447700900123", "agent_number": "+14155550100"}
        },
        "note": "wss://x/y?agent_id=a&conversation_signature=SECRET123 sk_abcdefghijklmnopqrstuv",
        "transcript": [
            {
                "tool_calls": [
                    {
                        "tool_details": {
                            "headers": {"xi-api-key": "plainkey", "Authorization": "Bearer t0k"}
                        }
                    }
                ]
            }
        ],
        "echo": "my key is hunter2-key",
    }
    out = scrub_conversation(conversation, secrets=("hunter2-key",))
    text = json.dumps(out)
    for secret in (
        "+447700900123",
        "+14155550100",
        "SECRET123",
        "sk_abcdefghijklmnopqrstuv",
        "plainkey",
        "t0k",
        "hunter2-key",
    ):
        assert secret not in text
    external = out["metadata"]["phone_call"]["external_number"]
    assert re.fullmatch(r"\+1555\d{7}", external)
    # Stable: the same real number always becomes the same fake one.
    assert scrub_conversation(conversation)["metadata"]["phone_call"]["external_number"] == external
    assert conversation["metadata"]["phone_call"]["external_number"] == "+447700900123"  # a copy


def test_record_mode_captures_through_the_emulator(tmp_path: Path) -> None:
    emu = Emulator(recording="default", api_key="sk_realkey0000000000000000")
    path = record_conversations(
        "https://api.elevenlabs.io",
        "sk_realkey0000000000000000",
        tmp_path / "rec.json",
        limit=4,
        transport=emu.transport(),
    )
    text = path.read_text()
    document = json.loads(text)
    assert document["format"] == 1
    assert len(document["conversations"]) == 4
    assert "sk_realkey" not in text
    assert "+15550100123" not in text  # numbers are re-faked, even fake ones
    assert emu.count("list") == 1
    assert emu.count("get") == 4
    # What was recorded loads back into an emulator and parses with the SDK.
    replay = Emulator(load_recording_file(path))
    assert len(replay.conversations()) == 4
    for conversation in document["conversations"]:
        GetConversationResponseModel.model_validate(conversation)
