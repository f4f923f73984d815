"""Outbound priming learns a SIP trunk's response (`sip_call_id`) as well as Twilio's `callSid`."""

from __future__ import annotations

import httpx
import pytest

from callsid_resolver import CallSidResolver, ElevenLabsClient
from callsid_resolver.testing import Emulator
from callsid_resolver.webhooks import mapping_from_outbound_call

# `SipTrunkOutboundCallResponse` (docs/protocol.md §6): snake_case, `sip_call_id` optional.
SIP_RESPONSE = {
    "success": True,
    "message": "Success",
    "conversation_id": "conv_fake0sip0outbound00000008",
    "sip_call_id": "a84b4c76e66710@[2001:db8::1]",
}


def test_a_sip_outbound_response_teaches_its_call_id() -> None:
    mapping = mapping_from_outbound_call(SIP_RESPONSE, agent_id="agent_x")
    assert mapping == ("a84b4c76e66710@[2001:db8::1]", "conv_fake0sip0outbound00000008", "agent_x")


@pytest.mark.parametrize(
    "change", [{"sip_call_id": None}, {"success": False}, {"sip_call_id": "has a space"}]
)
def test_an_incomplete_sip_outbound_response_teaches_nothing(change: dict[str, object]) -> None:
    assert mapping_from_outbound_call(SIP_RESPONSE | change) is None


def test_a_primed_sip_call_resolves_for_free_while_it_is_live() -> None:
    emulator = Emulator(profile="observed")
    with ElevenLabsClient("k", transport=emulator.transport()) as client:
        resolver = CallSidResolver(client)
        learned = mapping_from_outbound_call(SIP_RESPONSE)
        assert learned is not None
        resolver.remember(*learned)
        r = resolver.resolve("a84b4c76e66710@[2001:db8::1]", in_progress=True)
    assert (r.conversation_id, r.source, r.requests) == (
        SIP_RESPONSE["conversation_id"],
        "primed",
        0,
    )
    assert emulator.total_requests == 0


@pytest.mark.parametrize("profile", ["documented", "observed"])
def test_a_sip_outbound_call_on_the_emulator_is_primed_then_found_after_it_ends(
    profile: str,
) -> None:
    emulator = Emulator(profile=profile)
    call = {
        "agent_id": "agent_x",
        "agent_phone_number_id": "phnum_sip",
        "to_number": "+15550100999",
    }
    api = "https://api.elevenlabs.io"
    with (
        ElevenLabsClient("k", transport=emulator.transport()) as client,
        httpx.Client(transport=emulator.transport(), base_url=api) as http,
    ):
        placed = http.post(
            "/v1/convai/sip-trunk/outbound-call", json=call, headers={"xi-api-key": "k"}
        )
        response = placed.json()
        assert set(response) == {"success", "message", "conversation_id", "sip_call_id"}
        call_id = response["sip_call_id"]
        primed = CallSidResolver(client)
        learned = mapping_from_outbound_call(response, agent_id="agent_x")
        assert learned is not None
        primed.remember(*learned)
        assert primed.resolve(call_id, in_progress=True).source == "primed"
        emulator.end_session(response["conversation_id"])
        cold = CallSidResolver(client).resolve(call_id)  # another process, nothing primed
    assert (cold.conversation_id, cold.matched_by) == (
        response["conversation_id"],
        "phone_call.call_id",
    )
    assert emulator.count("sip_outbound_call") == 1
