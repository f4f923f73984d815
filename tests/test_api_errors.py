"""Error replies decoded under both profiles: legacy `status` or typed `code`, and the request id
from the `request-id` header, the typed body or `x-trace-id`."""

from __future__ import annotations

import httpx
import pytest

from callsid_resolver import (
    AuthenticationFailed,
    BadRequest,
    ElevenLabsClient,
    NotFound,
    RateLimited,
    RetryPolicy,
)
from callsid_resolver._core import _api
from callsid_resolver.testing import Emulator

KEY = "sk_test_key"


def client(profile: str, *, key: str = KEY) -> tuple[Emulator, ElevenLabsClient]:
    emulator = Emulator(recording="default", profile=profile, api_key=KEY)
    made = ElevenLabsClient(key, transport=emulator.transport(), retry=RetryPolicy(max_attempts=1))
    return emulator, made


@pytest.mark.parametrize("profile", ["documented", "observed"])
def test_not_found_shows_its_code_and_request_id(profile: str) -> None:
    emulator, api = client(profile)
    with api, pytest.raises(NotFound) as info:
        api.get_conversation("conv_nope")
    error = info.value
    assert error.error_code == "conversation_not_found"
    assert error.request_id == emulator.requests[-1].request_id
    assert "[conversation_not_found]" in str(error)
    assert f"request id {error.request_id}" in str(error)
    if profile == "observed":
        assert error.param == "conversation_id"
        assert error.headers["x-trace-id"] == error.request_id


@pytest.mark.parametrize("profile", ["documented", "observed"])
def test_a_wrong_key_never_shows_the_key(profile: str) -> None:
    _, api = client(profile, key="sk_wrong_secret_value")
    with api, pytest.raises(AuthenticationFailed) as info:
        api.get_conversation("conv_fake0inbound0done00000000002")
    assert info.value.error_code == "invalid_api_key"
    assert "sk_wrong_secret_value" not in str(info.value)
    assert "sk_wrong_secret_value" not in repr(info.value.headers)


@pytest.mark.parametrize(
    ("profile", "code", "reason"),
    [
        ("documented", None, "concurrency"),  # legacy `too_many_concurrent_requests`
        ("observed", None, "rate"),
        ("observed", "concurrent_limit_exceeded", "concurrency"),
    ],
)
def test_rate_limited_knows_both_429_codes(profile: str, code: str | None, reason: str) -> None:
    emulator, api = client(profile)
    emulator.inject(429, code=code)
    with api, pytest.raises(RateLimited) as info:
        api.list_conversations()
    assert info.value.reason == reason
    assert info.value.error_code in str(info.value)  # type: ignore[operator]


def test_an_unknown_429_code_has_no_reason() -> None:
    emulator, api = client("observed")
    emulator.inject(429, code="system_busy")
    with api, pytest.raises(RateLimited) as info:
        api.list_conversations()
    assert info.value.reason is None


def test_a_typed_422_names_its_parameter() -> None:
    _, api = client("observed")
    with api, pytest.raises(BadRequest) as info:
        api.perform(_api.list_conversations(_api.ListQuery(cursor="mangled")))
    assert (info.value.error_code, info.value.param) == ("invalid_parameters", "cursor")
    assert "(param cursor)" in str(info.value)


def test_the_request_id_header_wins_then_the_body_then_x_trace_id() -> None:
    call = _api.get_conversation("conv_x")
    body = {"detail": {"code": "c", "message": "m", "request_id": "from-body"}}
    both = httpx.Response(404, json=body, headers={"request-id": "from-header", "x-trace-id": "t"})
    trace_only = httpx.Response(404, json={"detail": "gone"}, headers={"x-trace-id": "from-trace"})
    for response, expected in [
        (both, "from-header"),
        (httpx.Response(404, json=body, headers={"x-trace-id": "t"}), "from-body"),
        (trace_only, "from-trace"),
        (httpx.Response(404, json={"detail": "gone"}), None),
    ]:
        with pytest.raises(NotFound) as info:
            call.decode(response)
        assert info.value.request_id == expected
