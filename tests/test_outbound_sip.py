"""Outbound priming learns a SIP trunk's response (`sip_call_id`) as well as Twilio's `callSid`."""

from __future__ import annotations

import pytest

from callsid_resolver import CallSidResolver, ElevenLabsClient
from callsid_resolver.testing import Emulator
from callsid_resolver.webhooks import mapping_from_outbound_call, prime_from_outbound_call

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
        assert prime_from_outbound_call(resolver, SIP_RESPONSE) is True
        r = resolver.resolve("a84b4c76e66710@[2001:db8::1]", in_progress=True)
    assert (r.conversation_id, r.source, r.requests) == (
        SIP_RESPONSE["conversation_id"],
        "primed",
        0,
    )
    assert emulator.total_requests == 0
