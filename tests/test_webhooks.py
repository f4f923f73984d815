"""Webhook signature verification, payload parsing, resolver priming and the Starlette example."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib.util
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callsid_resolver import (
    AsyncCallSidResolver,
    AsyncElevenLabsClient,
    CallSidResolver,
    CallSidResolverError,
    Conversation,
    ElevenLabsClient,
    InvalidSignature,
    MalformedPayload,
    MalformedSignature,
    MemoryCache,
    MissingSignature,
    StaleSignature,
    WebhookArgumentError,
    WebhookError,
)
from callsid_resolver.testing import sign_webhook
from callsid_resolver.webhooks import (
    SIGNATURE_HEADER,
    CallInitiationFailure,
    LearnedMapping,
    PostCallAudio,
    WebhookEvent,
    mapping_from_outbound_call,
    mapping_from_webhook,
    parse_webhook,
    verify_signature,
)

from .conftest import RECORDINGS, recording

SECRET = "wsec_test_0123456789abcdef0123456789abcdef"
NOW = 1_786_000_100
AGENT = "agent_fake0example0agent0000000001"
INBOUND_SID = "CAdeadbeef00000000000000000000beef"
INBOUND_CONV = "conv_fake0inbound0done00000000002"
FAILED_SID = "CA0badca11000000000000000000000005"
FAILED_CONV = "conv_fake0failed0outbound00000005"
SIP_SID = "6f1c2a9e-0000-4000-8000-0000000fa116"
OUTBOUND_SID = "CAfeedface00000000000000000000f00d"
OUTBOUND_CONV = "conv_fake0outbound0twilio00000003"
EXAMPLE = Path(__file__).parents[1] / "examples" / "webhook_starlette.py"


def digest(body: bytes, *, t: int = NOW, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, *, t: int = NOW, secret: str = SECRET) -> str:
    """The `ElevenLabs-Signature` value ElevenLabs would send for `body` at time `t`."""
    return f"t={t},v0={digest(body, t=t, secret=secret)}"


def raw(name: str) -> bytes:
    """A recorded webhook body, byte for byte (indentation and final newline included)."""
    return (RECORDINGS / f"{name}.json").read_bytes()


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def starlette_headers(headers: dict[str, str]) -> Any:
    # Starlette is an optional extra (`testing`): only the tests that need it skip without it.
    datastructures = pytest.importorskip("starlette.datastructures")
    return datastructures.Headers(headers=headers)


def parse(body: bytes, **kwargs: Any) -> WebhookEvent:
    return parse_webhook(body, sign(body), SECRET, now=NOW, **kwargs)


# -- signature ---------------------------------------------------------------------------------


def test_a_valid_signature_is_accepted() -> None:
    body = raw("webhook_post_call_transcription")
    verify_signature(body, sign(body), SECRET, now=NOW)
    assert parse_webhook(body, sign(body), SECRET, now=NOW).type == "post_call_transcription"


def test_the_real_clock_is_used_by_default() -> None:
    body = b'{"type": "ping", "data": {}}'
    verify_signature(body, sign(body, t=int(time.time())), SECRET)


def test_whitespace_and_uppercase_hex_in_the_header_are_accepted() -> None:
    body = b"{}"
    verify_signature(body, f" t={NOW} , v0={digest(body).upper()} ", SECRET, now=NOW)


def test_unknown_schemes_are_ignored() -> None:
    body = b"{}"
    verify_signature(body, f"t={NOW},v1=whatever,v0={digest(body)}", SECRET, now=NOW)


@pytest.mark.parametrize("first_matches", [True, False])
def test_key_rotation_any_v0_entry_may_match(first_matches: bool) -> None:
    body = raw("webhook_call_initiation_failure")
    good, old = digest(body), digest(body, secret="wsec_previous_secret")
    pair = (good, old) if first_matches else (old, good)
    verify_signature(body, f"t={NOW},v0={pair[0]},v0={pair[1]}", SECRET, now=NOW)


def test_key_rotation_with_no_matching_entry_is_rejected() -> None:
    body = b"{}"
    header = f"t={NOW},v0={digest(body, secret='a')},v0={digest(body, secret='b')}"
    with pytest.raises(InvalidSignature, match="none of 2"):
        verify_signature(body, header, SECRET, now=NOW)


def test_a_tampered_body_is_rejected() -> None:
    body = raw("webhook_call_initiation_failure")
    tampered = body.replace(FAILED_SID.encode(), b"CA" + b"1" * 32)
    with pytest.raises(InvalidSignature):
        verify_signature(tampered, sign(body), SECRET, now=NOW)


def test_reserialised_json_no_longer_matches() -> None:
    # Why the body must be the raw bytes: parsing and dumping again changes them.
    body = raw("webhook_post_call_transcription")
    with pytest.raises(InvalidSignature):
        verify_signature(encode(json.loads(body)), sign(body), SECRET, now=NOW)


def test_a_wrong_secret_is_rejected() -> None:
    body = b"{}"
    with pytest.raises(InvalidSignature):
        verify_signature(body, sign(body, secret="wsec_someone_else"), SECRET, now=NOW)


def test_a_signature_with_another_timestamp_is_rejected() -> None:
    body = b"{}"
    with pytest.raises(InvalidSignature):
        verify_signature(body, f"t={NOW + 1},v0={digest(body)}", SECRET, now=NOW)


def test_a_stale_timestamp_is_rejected_with_its_age() -> None:
    body = b"{}"
    verify_signature(body, sign(body, t=NOW - 1800), SECRET, now=NOW)
    with pytest.raises(StaleSignature, match="1801s old") as caught:
        verify_signature(body, sign(body, t=NOW - 1801), SECRET, now=NOW)
    assert (caught.value.age, caught.value.limit) == (1801, 1800)


def test_the_tolerance_is_configurable() -> None:
    body = b"{}"
    with pytest.raises(StaleSignature):
        verify_signature(body, sign(body, t=NOW - 61), SECRET, tolerance=60, now=NOW)


def test_a_future_timestamp_is_rejected() -> None:
    body = b"{}"
    verify_signature(body, sign(body, t=NOW + 300), SECRET, now=NOW)
    with pytest.raises(StaleSignature, match="301s in the future") as caught:
        verify_signature(body, sign(body, t=NOW + 301), SECRET, now=NOW)
    assert (caught.value.age, caught.value.limit) == (-301, 300)
    with pytest.raises(StaleSignature):
        verify_signature(body, sign(body, t=NOW + 1), SECRET, max_future_skew=0, now=NOW)


def test_a_stale_forgery_is_reported_as_a_forgery() -> None:
    # The digest is checked first: StaleSignature always means "authentic but late".
    with pytest.raises(InvalidSignature):
        verify_signature(b"{}", sign(b"{}", t=NOW - 99_999, secret="x"), SECRET, now=NOW)


@pytest.mark.parametrize("header", [None, "", "   "])
def test_a_missing_signature_is_rejected(header: str | None) -> None:
    with pytest.raises(MissingSignature):
        verify_signature(b"{}", header, SECRET, now=NOW)


HEX = "ab" * 32


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        f"v0={HEX}",
        f"t={NOW}",
        f"t={NOW},v0=",
        f"t=,v0={HEX}",
        f"t=abc,v0={HEX}",
        f"t=-5,v0={HEX}",
        f"t=1.5,v0={HEX}",
        f"t=+{NOW},v0={HEX}",
        f"t=1_786_000_100,v0={HEX}",
        f"t={'9' * 40},v0={HEX}",
        f"t={NOW},t={NOW},v0={HEX}",
        f"t={NOW},v0={'zz' * 32}",
        f"t={NOW},v0=abcdef",
        f"t={NOW},v0=sha256={HEX}",
        f"t={NOW};v0={HEX}",
        f"t={NOW},v0={HEX},garbage",
    ],
)
def test_a_malformed_signature_is_rejected(header: str) -> None:
    with pytest.raises(MalformedSignature) as caught:
        verify_signature(b"{}", header, SECRET, now=NOW)
    assert caught.value.reason


def test_an_empty_secret_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="secret is empty"):
        verify_signature(b"{}", None, "")
    with pytest.raises(ValueError, match="secret is empty"):
        parse_webhook(b"{}", {}, "")


def test_errors_form_one_tree_and_never_show_the_secret_or_the_digest() -> None:
    body = raw("webhook_post_call_transcription")
    expected = digest(body)
    cases = [
        (None, MissingSignature),
        (f"t={NOW},v0=nothex", MalformedSignature),
        (f"t={NOW},v0={'0' * 64}", InvalidSignature),
        (sign(body, t=NOW - 4000), StaleSignature),
        (sign(body, t=NOW + 4000), StaleSignature),
    ]
    for header, kind in cases:
        with pytest.raises(kind) as caught:
            verify_signature(body, header, SECRET, now=NOW)
        assert isinstance(caught.value, WebhookError)
        assert isinstance(caught.value, CallSidResolverError)
        text = str(caught.value) + repr(caught.value)
        assert SECRET not in text
        assert expected not in text
        assert expected.upper() not in text
    assert len({kind for _, kind in cases}) == 4


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sig: {"elevenlabs-signature": sig},
        lambda sig: {"ElevenLabs-Signature": sig},
        lambda sig: {"content-type": "application/json", "ELEVENLABS-SIGNATURE": sig},
        lambda sig: httpx.Headers({SIGNATURE_HEADER: sig}),
        lambda sig: starlette_headers({"ElevenLabs-Signature": sig}),
        lambda sig: sig,
    ],
)
def test_parse_finds_the_header_in_any_mapping_or_takes_its_value(
    wrap: Callable[[str], Any],
) -> None:
    body = raw("webhook_post_call_audio")
    assert parse_webhook(body, wrap(sign(body)), SECRET, now=NOW).type == "post_call_audio"


@pytest.mark.parametrize("headers", [None, {}, {"content-type": "application/json"}])
def test_parse_without_the_header_is_rejected(headers: Any) -> None:
    with pytest.raises(MissingSignature):
        parse_webhook(b"{}", headers, SECRET, now=NOW)


# -- parsing -----------------------------------------------------------------------------------


def test_a_transcription_webhook_carries_a_conversation() -> None:
    event = parse(raw("webhook_post_call_transcription"))
    assert isinstance(event.data, Conversation)
    assert event.event_timestamp == 1786000040
    assert event.data.status == "done"
    assert event.data.call_sid == event.call_sid == INBOUND_SID
    assert event.conversation_id == INBOUND_CONV
    assert event.agent_id == AGENT


def test_a_transcription_falls_back_to_the_system_call_sid_variable() -> None:
    payload = recording("webhook_post_call_transcription")
    del payload["data"]["metadata"]["phone_call"]
    assert parse(encode(payload)).call_sid == INBOUND_SID


def test_a_twilio_initiation_failure_carries_the_call_sid() -> None:
    event = parse(raw("webhook_call_initiation_failure"))
    assert isinstance(event.data, CallInitiationFailure)
    assert event.data.failure_reason == "no-answer"
    assert event.data.metadata is not None
    assert event.data.metadata.type == "twilio"
    assert event.data.metadata.body["CallStatus"] == "no-answer"
    assert (event.call_sid, event.conversation_id, event.agent_id) == (
        FAILED_SID,
        FAILED_CONV,
        AGENT,
    )


def test_a_sip_initiation_failure_carries_the_sip_call_id() -> None:
    event = parse(raw("webhook_call_initiation_failure_sip"))
    assert isinstance(event.data, CallInitiationFailure)
    assert event.data.failure_reason == "busy"
    assert event.call_sid == SIP_SID


def test_an_initiation_failure_without_metadata_has_no_call_sid() -> None:
    payload = recording("webhook_call_initiation_failure")
    del payload["data"]["metadata"]
    event = parse(encode(payload))
    assert event.call_sid is None
    assert event.conversation_id == FAILED_CONV


def test_an_audio_webhook_has_ids_but_no_call_sid() -> None:
    event = parse(raw("webhook_post_call_audio"))
    assert isinstance(event.data, PostCallAudio)
    assert event.data.full_audio.startswith("SUQz")  # base64 of an MP3's "ID3" tag
    assert (event.call_sid, event.conversation_id, event.agent_id) == (None, INBOUND_CONV, AGENT)
    assert "full_audio" not in repr(event.data)


def test_an_unknown_event_type_keeps_its_raw_data() -> None:
    # This data would fit PostCallAudio: it must stay a dict all the same.
    data = {"agent_id": AGENT, "conversation_id": "conv_x", "caller": "+15550100123"}
    event = parse(encode({"type": "answering_machine_detection", "data": data, "new": 1}))
    assert event.data == data
    assert event.event_timestamp is None
    assert (event.call_sid, event.conversation_id, event.agent_id) == (None, "conv_x", AGENT)
    assert "+1555" not in repr(event)


def test_new_fields_and_enum_values_are_accepted() -> None:
    payload = recording("webhook_call_initiation_failure")
    payload["schema_version"] = 2
    payload["data"]["failure_reason"] = "carrier-rejected"
    payload["data"]["metadata"]["type"] = "telnyx"
    event = parse(encode(payload))
    assert isinstance(event.data, CallInitiationFailure)
    assert event.data.failure_reason == "carrier-rejected"


@pytest.mark.parametrize(
    "name",
    [
        "webhook_post_call_transcription",
        "webhook_call_initiation_failure",
        "webhook_call_initiation_failure_sip",
        "webhook_post_call_audio",
    ],
)
def test_phone_numbers_stay_out_of_reprs(name: str) -> None:
    event = parse(raw(name))
    assert "+1555" not in repr(event)
    assert "+1555" not in repr(event.data)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe{", "not JSON"),
        (b"[1, 2]", "valid dictionary"),
        (b'{"data": {}}', "type: Field required"),
        (b'{"type": "post_call_audio", "data": []}', "data must be a JSON object"),
        (b'{"type": "post_call_audio", "data": {"agent_id": "a"}}', "data.conversation_id"),
    ],
)
def test_a_signed_body_that_is_no_event_is_a_malformed_payload(body: bytes, where: str) -> None:
    with pytest.raises(MalformedPayload, match=where) as caught:
        parse(body)
    assert isinstance(caught.value, WebhookError)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_a_malformed_payload_does_not_echo_its_input() -> None:
    payload = recording("webhook_post_call_transcription")
    payload["data"]["metadata"]["start_time_unix_secs"] = "call +15550100123"
    with pytest.raises(MalformedPayload, match=r"data\.metadata\.start_time_unix_secs") as caught:
        parse(encode(payload))
    assert "+1555" not in str(caught.value)


# -- priming -----------------------------------------------------------------------------------


def no_network(request: httpx.Request) -> httpx.Response:
    pytest.fail(f"priming must answer without HTTP, but {request.method} {request.url} was sent")


@pytest.fixture
def resolver() -> Iterator[CallSidResolver]:
    client = ElevenLabsClient("test-key", transport=httpx.MockTransport(no_network))
    yield CallSidResolver(client, cache=MemoryCache())
    client.close()


@pytest.fixture
async def aresolver() -> AsyncIterator[AsyncCallSidResolver]:
    client = AsyncElevenLabsClient("test-key", transport=httpx.MockTransport(no_network))
    yield AsyncCallSidResolver(client, cache=MemoryCache())
    await client.aclose()


@pytest.mark.parametrize(
    ("name", "sid", "conversation"),
    [
        ("webhook_post_call_transcription", INBOUND_SID, INBOUND_CONV),
        ("webhook_call_initiation_failure", FAILED_SID, FAILED_CONV),
        ("webhook_call_initiation_failure_sip", SIP_SID, "conv_fake0failed0sip0000000000006"),
    ],
)
def test_a_webhook_primes_the_resolver(
    resolver: CallSidResolver, name: str, sid: str, conversation: str
) -> None:
    learned = mapping_from_webhook(parse(raw(name)))
    assert learned is not None
    resolver.remember(*learned)
    resolution = resolver.resolve(sid)
    assert (resolution.source, resolution.requests) == ("primed", 0)
    assert (resolution.conversation_id, resolution.agent_id) == (conversation, AGENT)


@pytest.mark.parametrize("kind", ["post_call_audio", "something_new"])
def test_a_webhook_without_a_call_sid_teaches_nothing(kind: str) -> None:
    event = parse(encode({"type": kind, "data": {"agent_id": AGENT, "conversation_id": "c"}}))
    assert mapping_from_webhook(event) is None


def test_a_call_sid_the_resolver_cannot_hold_teaches_nothing() -> None:
    payload = recording("webhook_call_initiation_failure_sip")
    payload["data"]["metadata"]["body"]["call_sid"] = "sip abc@example.invalid"  # a space
    event = parse(encode(payload))
    assert event.call_sid == "sip abc@example.invalid"
    assert mapping_from_webhook(event) is None


def test_mapping_from_webhook_is_a_pure_function() -> None:
    event = parse(raw("webhook_post_call_transcription"))
    mapping = mapping_from_webhook(event)
    assert mapping == LearnedMapping(INBOUND_SID, INBOUND_CONV, AGENT)
    assert mapping == (INBOUND_SID, INBOUND_CONV, AGENT)


async def test_a_webhook_primes_the_async_resolver(aresolver: AsyncCallSidResolver) -> None:
    learned = mapping_from_webhook(parse(raw("webhook_post_call_transcription")))
    assert learned is not None
    await aresolver.remember(*learned)
    resolution = await aresolver.resolve(INBOUND_SID)
    assert (resolution.source, resolution.requests) == ("primed", 0)
    assert (resolution.conversation_id, resolution.agent_id) == (INBOUND_CONV, AGENT)
    assert mapping_from_webhook(parse(raw("webhook_post_call_audio"))) is None


def test_an_outbound_call_response_primes_the_resolver(resolver: CallSidResolver) -> None:
    response = recording("twilio_outbound_call_response")
    learned = mapping_from_outbound_call(response, agent_id=AGENT)
    assert learned is not None
    resolver.remember(*learned)
    resolution = resolver.resolve(OUTBOUND_SID)
    assert (resolution.source, resolution.requests) == ("primed", 0)
    assert (resolution.conversation_id, resolution.agent_id) == (OUTBOUND_CONV, AGENT)


async def test_an_outbound_call_response_primes_the_async_resolver(
    aresolver: AsyncCallSidResolver,
) -> None:
    learned = mapping_from_outbound_call(recording("twilio_outbound_call_response"))
    assert learned is not None
    await aresolver.remember(*learned)
    resolution = await aresolver.resolve(OUTBOUND_SID)
    assert (resolution.source, resolution.requests, resolution.agent_id) == ("primed", 0, None)
    assert mapping_from_outbound_call({"success": False}) is None


def test_the_sdk_attribute_name_call_sid_is_read_too() -> None:
    response = {"success": True, "conversation_id": OUTBOUND_CONV, "call_sid": OUTBOUND_SID}
    assert mapping_from_outbound_call(response) == (OUTBOUND_SID, OUTBOUND_CONV, None)


@pytest.mark.parametrize(
    "change",
    [
        {"success": False},
        {"callSid": None},
        {"conversation_id": None},
        {"callSid": ""},
        {"callSid": "CA-not-a-sid 1"},
        {"conversation_id": "conv/../x"},
    ],
)
def test_a_failed_or_incomplete_outbound_call_teaches_nothing(change: dict[str, Any]) -> None:
    response = {**recording("twilio_outbound_call_response"), **change}
    assert mapping_from_outbound_call(response) is None


def test_an_empty_outbound_response_teaches_nothing() -> None:
    assert mapping_from_outbound_call({}) is None


# -- the Starlette example ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> ModuleType:
    pytest.importorskip("starlette")
    spec = importlib.util.spec_from_file_location("webhook_starlette", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def http(
    example: ModuleType, aresolver: AsyncCallSidResolver
) -> AsyncIterator[httpx.AsyncClient]:
    app = example.create_app(aresolver, SECRET)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def post(http: httpx.AsyncClient, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    return await http.post("/webhooks/elevenlabs", content=body, headers=headers)


async def test_the_example_verifies_primes_and_answers_200(
    http: httpx.AsyncClient, aresolver: AsyncCallSidResolver
) -> None:
    body = raw("webhook_post_call_transcription")
    response = await post(http, body, sign(body, t=int(time.time())))
    assert response.status_code == 200
    assert response.json() == {"received": True, "learned": True}
    resolution = await aresolver.resolve(INBOUND_SID)
    assert (resolution.source, resolution.requests) == ("primed", 0)


async def test_the_example_acknowledges_events_it_learns_nothing_from(
    http: httpx.AsyncClient,
) -> None:
    body = raw("webhook_post_call_audio")
    response = await post(http, body, sign(body, t=int(time.time())))
    assert (response.status_code, response.json()["learned"]) == (200, False)


@pytest.mark.parametrize("problem", ["missing", "malformed", "wrong secret", "stale", "tampered"])
async def test_the_example_answers_401_to_a_bad_signature(
    http: httpx.AsyncClient, aresolver: AsyncCallSidResolver, problem: str
) -> None:
    body = raw("webhook_post_call_transcription")
    now = int(time.time())
    signature: str | None = {
        "missing": None,
        "malformed": "t=yesterday",
        "wrong secret": sign(body, t=now, secret="wsec_someone_else"),
        "stale": sign(body, t=now - 3600),
        "tampered": sign(body.replace(b"gold", b"platinum"), t=now),
    }[problem]
    response = await post(http, body, signature)
    assert response.status_code == 401
    assert SECRET not in response.text
    primed = await aresolver.cache.get_many([aresolver.settings.keys.sid(INBOUND_SID)])
    assert primed == [None]


async def test_the_example_logs_and_acknowledges_an_unreadable_signed_body(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = b'{"type": "post_call_transcription", "data": {"agent_id": "a"}}'
    response = await post(http, body, sign(body, t=int(time.time())))
    assert (response.status_code, response.json()["learned"]) == (200, False)
    assert "unreadable ElevenLabs webhook" in caplog.text


async def test_the_example_only_takes_post(http: httpx.AsyncClient) -> None:
    assert (await http.get("/webhooks/elevenlabs")).status_code == 405


async def test_the_example_builds_its_app_from_the_environment(
    example: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", "test-key")
    monkeypatch.setenv("ELEVENLABS_WEBHOOK_SECRET", SECRET)
    app = example.app_from_env()
    body = raw("webhook_call_initiation_failure")
    transport = httpx.ASGITransport(app=app)
    # ASGITransport does not run the lifespan; enter it by hand, as a server would.
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        response = await post(client, body, sign(body, t=int(time.time())))
    assert response.json() == {"received": True, "learned": True}


def test_sign_webhook_signs_as_elevenlabs_does() -> None:
    body = raw("webhook_post_call_transcription")
    header = sign_webhook(body, SECRET, timestamp=NOW)
    assert header == sign(body)  # the independent computation above
    verify_signature(body, header, SECRET, now=NOW)
    verify_signature(body, sign_webhook(body.decode(), SECRET), SECRET)  # now, from text
    assert sign_webhook(body, SECRET.encode(), timestamp=NOW) == header  # a bytes secret
    with pytest.raises(InvalidSignature):
        verify_signature(body + b" ", header, SECRET, now=NOW)
    with pytest.raises(ValueError, match="empty"):
        sign_webhook(body, "")


# -- hardening (issue #15: items 10 and 15) -----------------------------------------------------


def test_a_body_nested_5000_deep_is_a_malformed_payload_not_a_recursion_error() -> None:
    for body in (
        b"[" * 5_000 + b"]" * 5_000,
        b'{"type":"x","data":' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    ):
        with pytest.raises(MalformedPayload) as info:
            parse(body)
        assert info.value.errors == [("", "not JSON (JsonRefused)")]


def test_str_bytearray_and_memoryview_bodies_verify_like_bytes() -> None:
    body = raw("webhook_post_call_transcription")
    header = sign(body)
    expected = parse(body)
    for same in (body.decode(), bytearray(body), memoryview(body)):
        verify_signature(same, header, SECRET, now=NOW)
        assert parse_webhook(same, header, SECRET, now=NOW) == expected
    with pytest.raises(InvalidSignature):
        verify_signature(body.decode() + " ", header, SECRET, now=NOW)


@pytest.mark.parametrize("body", [None, 42, {"type": "x"}, ["x"], "\ud800 lone surrogate"])
def test_a_body_of_another_type_is_a_webhook_argument_error(body: Any) -> None:
    with pytest.raises(WebhookArgumentError) as info:
        verify_signature(body, sign(b"{}"), SECRET, now=NOW)
    assert info.value.parameter == "body"
    assert isinstance(info.value, ValueError)


def test_bytes_and_single_item_list_header_values_are_read() -> None:
    body = encode({"type": "post_call_audio", "data": {"agent_id": AGENT, "conversation_id": "c"}})
    header = sign(body)
    for value in (header.encode(), [header], (header.encode(),)):
        assert parse_webhook(body, value, SECRET, now=NOW).type == "post_call_audio"
        assert parse_webhook(body, {SIGNATURE_HEADER: value}, SECRET, now=NOW).type
    # An ASGI scope's headers: lower-case bytes names and values.
    asgi = {b"elevenlabs-signature": header.encode(), b"content-type": b"application/json"}
    assert parse_webhook(body, asgi, SECRET, now=NOW).type == "post_call_audio"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ([], MissingSignature),
        ([b""], MissingSignature),
        (["t=1,v0=" + "0" * 64, "t=2,v0=" + "0" * 64], MalformedSignature),
        (b"t=1,v0=\xff" + b"0" * 63, MalformedSignature),
        (12345, MalformedSignature),
        ({"t": 1}, MalformedSignature),
    ],
)
def test_odd_header_values_are_refused_with_a_webhook_error(value: Any, error: type) -> None:
    with pytest.raises(error):
        verify_signature(b"{}", value, SECRET, now=NOW)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"tolerance": float("nan")}, "tolerance"),
        ({"tolerance": float("inf")}, "tolerance"),
        ({"tolerance": -1}, "tolerance"),
        ({"tolerance": "1800"}, "tolerance"),
        ({"tolerance": True}, "tolerance"),
        ({"max_future_skew": float("nan")}, "max_future_skew"),
        ({"now": float("nan")}, "now"),
        ({"now": float("-inf")}, "now"),
        ({"secret": ""}, "secret"),
        ({"secret": None}, "secret"),
    ],
)
def test_bad_arguments_are_refused_before_any_check(kwargs: dict[str, Any], parameter: str) -> None:
    body = raw("webhook_post_call_transcription")
    args: dict[str, Any] = {"secret": SECRET, "now": NOW} | kwargs
    secret = args.pop("secret")
    with pytest.raises(WebhookArgumentError) as info:
        verify_signature(body, sign(body, t=NOW - 30 * 365 * 86400), secret, **args)
    assert info.value.parameter == parameter
    assert SECRET not in str(info.value)


def test_a_nan_tolerance_no_longer_accepts_a_30_year_old_signature() -> None:
    body = raw("webhook_post_call_transcription")
    old = sign(body, t=NOW - 30 * 365 * 86400)
    with pytest.raises(WebhookArgumentError):
        parse_webhook(body, old, SECRET, now=NOW, tolerance=float("nan"))
    with pytest.raises(StaleSignature):
        parse_webhook(body, old, SECRET, now=NOW)


HEADER_VALUES = (
    st.text(max_size=120)
    | st.binary(max_size=120)
    | st.builds(
        lambda t, h: f"t={t},v0={h}",
        st.integers(-5, 10**16),
        st.text("0123456789abcdefABCDEF", max_size=70),
    )
    | st.lists(st.text(max_size=40) | st.binary(max_size=40), max_size=3)
    | st.none()
    | st.integers()
)
BODIES = (
    st.binary(max_size=300) | st.text(max_size=300) | st.builds(bytearray, st.binary(max_size=50))
)


@given(body=BODIES, header=HEADER_VALUES, tolerance=st.floats() | st.integers(-10, 10**6))
@settings(max_examples=300, deadline=None)
def test_any_body_header_and_tolerance_is_accepted_or_refused_with_a_webhook_error(
    body: Any, header: Any, tolerance: float
) -> None:
    for headers in (header, {SIGNATURE_HEADER: header}, {b"elevenlabs-signature": header}):
        with contextlib.suppress(WebhookError):
            parse_webhook(body, headers, SECRET, now=NOW, tolerance=tolerance)


@given(
    body=st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=5), children, max_size=3)
        ),
        max_leaves=20,
    ).map(lambda value: json.dumps(value).encode())
)
@settings(max_examples=200, deadline=None)
def test_any_authentic_json_body_parses_or_is_a_malformed_payload(body: bytes) -> None:
    try:
        event: WebhookEvent | None = parse(body)
    except MalformedPayload as exc:
        event, errors = None, exc.errors
    assert isinstance(event, WebhookEvent) or errors
