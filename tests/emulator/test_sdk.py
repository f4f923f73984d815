"""The official ElevenLabs SDK works against the emulator, and its models accept every payload."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from elevenlabs import AsyncElevenLabs, ElevenLabs
from elevenlabs.errors import UnprocessableEntityError
from elevenlabs.types import (
    ConversationSignedUrlResponseModel,
    GetConversationResponseModel,
    GetConversationsPageResponseModel,
    TwilioOutboundCallResponse,
)

from callsid_resolver.testing import (
    Emulator,
    EmulatorServer,
    list_recordings,
    load_recording,
    synthetic_conversations,
)

from .conftest import API, DONE_ID, DONE_SID, KEY, LIST, LIVE_SID


@pytest.fixture
def sdk(server: EmulatorServer) -> Iterator[ElevenLabs]:
    with httpx.Client() as client:  # the SDK never closes a client it made itself
        yield ElevenLabs(api_key=KEY, base_url=server.base_url, httpx_client=client)


def test_sdk_lists_pages_gets_and_signs_against_the_server(
    sdk: ElevenLabs, server: EmulatorServer
) -> None:
    conversations = sdk.conversational_ai.conversations
    seen: list[str] = []
    cursor = None
    while True:
        page = conversations.list(page_size=2, cursor=cursor)
        seen += [c.conversation_id for c in page.conversations]
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 5
    conversation = conversations.get(DONE_ID)
    phone_call = conversation.metadata.phone_call
    assert phone_call is not None
    assert phone_call.call_sid == DONE_SID
    signed = conversations.get_signed_url(agent_id="agent_x")
    assert signed.signed_url.startswith(f"{server.ws_url}/v1/convai/conversation?agent_id=agent_x")


def test_sdk_filters_reach_the_emulator(sdk: ElevenLabs, emu: Emulator) -> None:
    page = sdk.conversational_ai.conversations.list(
        dynamic_variable_filter=f"system__call_sid:eq:{LIVE_SID}",
        exclude_statuses=["done", "processing", "failed"],
        sort_direction="asc",
    )
    assert [c.status for c in page.conversations] == ["in-progress"]
    sent = emu.requests.of("list")[-1]
    assert sent.param_list("exclude_statuses") == ["done", "processing", "failed"]


def test_sdk_sees_the_validation_error_as_its_typed_422(sdk: ElevenLabs) -> None:
    with pytest.raises(UnprocessableEntityError):
        sdk.conversational_ai.conversations.list(page_size=500)


def test_sdk_over_the_in_process_transport(emu: Emulator) -> None:
    with httpx.Client(transport=emu.transport()) as client:
        sdk = ElevenLabs(api_key=KEY, base_url=API, httpx_client=client)
        page = sdk.conversational_ai.conversations.list(page_size=100)
        assert len(page.conversations) == 5
        signed = sdk.conversational_ai.conversations.get_signed_url(agent_id="a")
        assert signed.signed_url.startswith("wss://api.elevenlabs.io/")
        made = sdk.conversational_ai.twilio.outbound_call(
            agent_id="agent_x", agent_phone_number_id="phnum_x", to_number="+15550100999"
        )
        assert made.call_sid is not None
        assert made.conversation_id is not None
        assert sdk.conversational_ai.conversations.get(made.conversation_id).status == "initiated"


async def test_async_sdk_over_the_in_process_transport(emu: Emulator) -> None:
    async with httpx.AsyncClient(transport=emu.transport()) as client:
        sdk = AsyncElevenLabs(api_key=KEY, base_url=API, httpx_client=client)
        page = await sdk.conversational_ai.conversations.list(page_size=3)
        assert len(page.conversations) == 3
        assert page.has_more
        got = await sdk.conversational_ai.conversations.get(page.conversations[0].conversation_id)
        assert got.status == "in-progress"


@pytest.mark.parametrize("name", list_recordings())
def test_every_bundled_conversation_parses_strictly(name: str) -> None:
    conversations = load_recording(name)
    assert conversations
    for conversation in conversations:
        parsed = GetConversationResponseModel.model_validate(conversation)
        assert parsed.conversation_id == conversation["conversation_id"]


def test_every_payload_the_emulator_serves_parses(emu: Emulator, http: httpx.Client) -> None:
    for name in list_recordings():
        for conversation in load_recording(name):
            emu.add_conversation(conversation)
    for conversation in synthetic_conversations(200, seed=5, live=3):
        emu.add_conversation(conversation)
    http.post(
        "/v1/convai/twilio/outbound-call",
        json={"agent_id": "a", "agent_phone_number_id": "p", "to_number": "+15550100999"},
    )
    cursor = None
    served = 0
    while True:
        params = {"page_size": 100, "summary_mode": "include"} | (
            {"cursor": cursor} if cursor else {}
        )
        page = http.get(LIST, params=params).json()
        GetConversationsPageResponseModel.model_validate(page)
        for row in page["conversations"]:
            got = http.get(f"{LIST}/{row['conversation_id']}").json()
            GetConversationResponseModel.model_validate(got)
            served += 1
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert served == len(emu.conversations())
    signed = http.get("/v1/convai/conversation/get-signed-url?agent_id=a").json()
    ConversationSignedUrlResponseModel.model_validate(signed)
    made = http.post(
        "/v1/convai/twilio/outbound-call",
        json={"agent_id": "a", "agent_phone_number_id": "p", "to_number": "+15550100999"},
    ).json()
    assert TwilioOutboundCallResponse.model_validate(made).call_sid == made["callSid"]
