from __future__ import annotations

import httpx
import pytest

from callsid_resolver import (
    ApiError,
    AsyncElevenLabsClient,
    AuthenticationFailed,
    BadRequest,
    DeadlineExceeded,
    ElevenLabsClient,
    MissingApiKey,
    NotFound,
    PermissionDenied,
    RateLimited,
    RetryPolicy,
    ServerError,
    TransportError,
    UnexpectedResponse,
)

from .conftest import AGENT, API_KEY, FakeApi, FakeTime, make_conversation, recording


def test_list_sends_every_filter_with_repeated_keys(client: ElevenLabsClient, api: FakeApi) -> None:
    client.list_conversations(
        cursor="3",
        page_size=50,
        agent_id=AGENT,
        call_start_after_unix=10,
        call_start_before_unix=20,
        phone_number_ids=["phnum_a", "phnum_b"],
        conversation_initiation_source="twilio",
        dynamic_variable_filter="system__call_sid:eq:CA1",
        exclude_statuses=["done", "failed"],
        sort_direction="asc",
    )
    params = api.requests[0].url.params
    assert params.get_list("phone_number_ids") == ["phnum_a", "phnum_b"]
    assert params.get_list("exclude_statuses") == ["done", "failed"]
    assert dict(params) | {"phone_number_ids": None, "exclude_statuses": None} == {
        "cursor": "3",
        "page_size": "50",
        "agent_id": AGENT,
        "call_start_after_unix": "10",
        "call_start_before_unix": "20",
        "phone_number_ids": None,
        "conversation_initiation_source": "twilio",
        "dynamic_variable_filter": "system__call_sid:eq:CA1",
        "exclude_statuses": None,
        "sort_direction": "asc",
    }
    assert api.requests[0].headers["xi-api-key"] == API_KEY


def test_bad_list_arguments_fail_before_io(client: ElevenLabsClient, api: FakeApi) -> None:
    with pytest.raises(ValueError, match="page_size"):
        client.list_conversations(page_size=101)
    with pytest.raises(TypeError, match="sequence"):
        client.list_conversations(exclude_statuses="done")  # type: ignore[typeddict-item]
    with pytest.raises(ValueError, match="conversation id"):
        client.get_conversation("../agents")
    assert api.counts.total() == 0


def test_iterators_follow_cursors_to_the_end(client: ElevenLabsClient, api: FakeApi) -> None:
    api.add(*(make_conversation(i) for i in range(7)))
    pages = list(client.iter_pages(page_size=3))
    assert [len(p.conversations) for p in pages] == [3, 3, 1]
    ids = [c.conversation_id for c in client.iter_conversations(page_size=3)]
    assert ids == [f"conv_test{i:023d}" for i in reversed(range(7))]
    assert api.counts["list"] == 6


async def test_async_iterators_match_sync(aclient: AsyncElevenLabsClient, api: FakeApi) -> None:
    api.add(*(make_conversation(i) for i in range(5)))
    ids = [c.conversation_id async for c in aclient.iter_conversations(page_size=2)]
    assert ids == [f"conv_test{i:023d}" for i in reversed(range(5))]
    assert api.counts["list"] == 3


def test_get_conversation_and_signed_url(client: ElevenLabsClient, api: FakeApi) -> None:
    api.add(recording("conversation_twilio_inbound"))
    conv = client.get_conversation("conv_fake0inbound0done00000000002")
    assert conv.call_sid == "CAdeadbeef00000000000000000000beef"
    signed = client.get_signed_url(AGENT)
    assert signed.signed_url.startswith("wss://")
    assert "FAKE-SIGNATURE" not in repr(signed)
    assert api.requests[-1].url.params["agent_id"] == AGENT


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (400, {"detail": {"status": "bad", "message": "Bad"}}, BadRequest),
        (401, recording("error_401_invalid_api_key"), AuthenticationFailed),
        (403, {"detail": {"status": "missing_permissions", "message": "No"}}, PermissionDenied),
        (404, {"detail": {"status": "conversation_not_found", "message": "Gone"}}, NotFound),
        (422, recording("error_422_validation"), BadRequest),
        (418, {"detail": "teapot"}, ApiError),
    ],
)
def test_error_statuses_map_to_named_errors(
    client: ElevenLabsClient, api: FakeApi, status: int, body: object, cls: type[ApiError]
) -> None:
    api.faults.append(httpx.Response(status, json=body, headers={"request-id": "req_123"}))
    with pytest.raises(cls) as info:
        client.list_conversations()
    err = info.value
    assert type(err) is cls
    assert err.status_code == status
    assert err.request_id == "req_123"
    assert err.detail == body["detail"]  # type: ignore[index]
    assert "req_123" in str(err)
    assert API_KEY not in str(err)
    assert API_KEY not in repr(err.__dict__)
    assert api.counts["list"] == 1  # 4xx is never retried


def test_422_message_names_the_field(client: ElevenLabsClient, api: FakeApi) -> None:
    api.faults.append(httpx.Response(422, json=recording("error_422_validation")))
    with pytest.raises(BadRequest, match=r"query\.page_size: Input should be less than"):
        client.list_conversations()


def test_retries_honour_retry_after_then_succeed(
    client: ElevenLabsClient, api: FakeApi, fake_time: FakeTime
) -> None:
    api.faults += [
        httpx.Response(429, headers={"Retry-After": "2"}),
        httpx.Response(503),
        httpx.Response(429, headers={"retry-after-ms": "250"}),
    ]
    page = client.list_conversations()
    assert page.conversations == []
    assert api.counts["list"] == 4
    assert fake_time.sleeps[0] == 2.0
    assert 0 <= fake_time.sleeps[1] <= 1.0  # backoff with jitter: attempt 2 caps at 1 s
    assert fake_time.sleeps[2] == 0.25


def test_rate_limit_after_all_attempts_carries_retry_after(
    client: ElevenLabsClient, api: FakeApi
) -> None:
    api.faults += [httpx.Response(429, headers={"Retry-After": "1"})] * 4
    with pytest.raises(RateLimited) as info:
        client.list_conversations()
    assert info.value.retry_after == 1.0
    assert api.counts["list"] == 4


def test_retry_after_past_the_deadline_is_not_waited(
    client: ElevenLabsClient, api: FakeApi, fake_time: FakeTime
) -> None:
    api.faults.append(httpx.Response(429, headers={"Retry-After": "120"}))
    with pytest.raises(RateLimited):
        client.list_conversations()
    assert fake_time.sleeps == []
    assert api.counts["list"] == 1


def test_server_errors_are_retried_then_raised(client: ElevenLabsClient, api: FakeApi) -> None:
    api.faults += [httpx.Response(500, text="oops")] * 4
    with pytest.raises(ServerError) as info:
        client.list_conversations()
    assert info.value.detail == "oops"
    assert api.counts["list"] == 4


def test_connection_faults_are_retried_then_raised(client: ElevenLabsClient, api: FakeApi) -> None:
    api.faults += [httpx.ConnectError("refused")] * 2
    assert client.list_conversations().has_more is False
    api.faults += [httpx.RemoteProtocolError("dropped")] * 4
    with pytest.raises(TransportError) as info:
        client.list_conversations()
    assert info.value.attempts == 4
    assert "RemoteProtocolError" in str(info.value)
    assert api.counts["list"] == 7


def test_deadline_bounds_total_time(api: FakeApi, fake_time: FakeTime) -> None:
    policy = RetryPolicy(max_attempts=100, backoff_initial=4, backoff_max=4, deadline=10)
    with ElevenLabsClient(
        API_KEY,
        transport=httpx.MockTransport(api),
        retry=policy,
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    ) as c:
        api.faults += [httpx.ReadTimeout("slow")] * 100
        with pytest.raises(DeadlineExceeded):
            c.list_conversations()
    assert sum(fake_time.sleeps) < 10
    assert api.counts["list"] < 100


def test_attempt_timeouts_shrink_to_the_deadline(api: FakeApi, fake_time: FakeTime) -> None:
    policy = RetryPolicy(deadline=3)
    with ElevenLabsClient(
        API_KEY, transport=httpx.MockTransport(api), retry=policy, clock=fake_time.clock
    ) as c:
        c.list_conversations()
    assert api.requests[0].extensions["timeout"] == {
        "connect": 3,
        "read": 3,
        "write": 3,
        "pool": 3,
    }


def test_malformed_success_body(client: ElevenLabsClient, api: FakeApi) -> None:
    api.faults.append(httpx.Response(200, text="{not json"))
    with pytest.raises(UnexpectedResponse, match="does not match"):
        client.list_conversations()
    api.faults.append(httpx.Response(200, json={"conversations": "nope", "has_more": False}))
    with pytest.raises(UnexpectedResponse, match="conversations"):
        client.list_conversations()


async def test_async_client_retries_and_maps_errors(
    aclient: AsyncElevenLabsClient, api: FakeApi, fake_time: FakeTime
) -> None:
    api.faults += [httpx.Response(429, headers={"Retry-After": "3"}), httpx.ConnectError("x")]
    api.add(recording("conversation_twilio_outbound"))
    conv = await aclient.get_conversation("conv_fake0outbound0twilio00000003")
    assert conv.call_sid == "CAfeedface00000000000000000000f00d"
    assert fake_time.sleeps[0] == 3.0
    assert api.counts["get"] == 3
    with pytest.raises(NotFound) as info:
        await aclient.get_conversation("conv_missing")
    assert info.value.error_code == "conversation_not_found"


def test_api_key_from_environment_and_never_in_repr(
    monkeypatch: pytest.MonkeyPatch, api: FakeApi
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", API_KEY)
    with ElevenLabsClient(transport=httpx.MockTransport(api)) as c:
        c.list_conversations()
        assert API_KEY not in repr(c)
        assert c.auth_headers() == {"xi-api-key": API_KEY}
    assert api.requests[0].headers["xi-api-key"] == API_KEY
    monkeypatch.delenv("ELEVENLABS_API_KEY")
    with pytest.raises(MissingApiKey, match="ELEVENLABS_API_KEY"):
        ElevenLabsClient()


def test_base_url_is_validated_and_used(api: FakeApi) -> None:
    with pytest.raises(ValueError, match="base_url"):
        ElevenLabsClient(API_KEY, base_url="api.elevenlabs.io")
    eu = "https://api.eu.residency.elevenlabs.io/"
    with ElevenLabsClient(API_KEY, base_url=eu, transport=httpx.MockTransport(api)) as c:
        c.list_conversations()
    assert str(api.requests[0].url).startswith("https://api.eu.residency.elevenlabs.io/v1/")


def test_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch, api: FakeApi) -> None:
    monkeypatch.setenv("ELEVENLABS_BASE_URL", "https://api.us.elevenlabs.io")
    with ElevenLabsClient(API_KEY, transport=httpx.MockTransport(api)) as c:
        c.list_conversations()
        assert c.base_url == "https://api.us.elevenlabs.io"
    assert api.requests[0].url.host == "api.us.elevenlabs.io"


def test_a_callers_http_client_is_used_and_left_open(api: FakeApi) -> None:
    http = httpx.Client(transport=httpx.MockTransport(api))
    with ElevenLabsClient(API_KEY, http_client=http) as c:
        c.list_conversations()
    assert not http.is_closed
    http.close()
    assert api.counts["list"] == 1
