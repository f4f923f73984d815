"""Emulator profiles: every observed behaviour on the HTTP side, profile files, remote control."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from callsid_resolver.testing import (
    DOCUMENTED,
    OBSERVED,
    Emulator,
    EmulatorProfile,
    EmulatorServer,
    RemoteEmulator,
    load_profile,
    profile_file,
)

from .conftest import API, DONE_ID, DONE_SID, KEY, LIST, LIVE_ID, LIVE_SID, SIP_ID, WEB_ID, ids

SIP_UUID = "7f1e9a52-3c1d-4c8e-9f00-5a1b2c3d4e5f"


def client(emulator: Emulator, key: str | None = KEY) -> httpx.Client:
    headers = {"xi-api-key": key} if key else {}
    return httpx.Client(transport=emulator.transport(), base_url=API, headers=headers)


@pytest.fixture
def observed() -> Iterator[httpx.Client]:
    with client(Emulator(recording="default", profile="observed")) as http:
        yield http


def get(http: httpx.Client, conversation_id: str) -> Any:
    response = http.get(f"{LIST}/{conversation_id}")
    assert response.status_code == 200, response.text
    return response.json()


def variables(conversation: Any) -> Any:
    return conversation["conversation_initiation_client_data"]["dynamic_variables"]


# -- the profiles themselves ------------------------------------------------------------------
def test_the_two_profiles_and_their_names() -> None:
    assert load_profile("documented") is DOCUMENTED
    assert load_profile("observed") is OBSERVED
    assert load_profile(OBSERVED) is OBSERVED
    assert Emulator().profile == DOCUMENTED
    differing = {k for k, v in DOCUMENTED.settings().items() if OBSERVED.settings()[k] != v}
    assert differing == set(DOCUMENTED.settings()) - {"filter_mode"}
    with pytest.raises(ValueError, match="unknown profile 'pessimistic'"):
        load_profile("pessimistic")


def test_a_profile_file_round_trips_and_omitted_settings_are_pessimistic(tmp_path: Path) -> None:
    mine = EmulatorProfile(name="my-workspace", filter_mode="empty", live_call_hides_ids=True)
    path = tmp_path / "profile.json"
    path.write_text(profile_file(mine, {"list": "ok"}))
    assert load_profile(path) == mine
    assert load_profile(str(path)) == mine
    path.write_text(
        json.dumps({"callsid_resolver_profile": 1, "settings": {"error_body": "legacy"}})
    )
    partial = load_profile(path)
    assert partial.error_body == "legacy"
    assert partial.live_call_hides_ids is True  # not measured: the observed value
    assert partial.name == "profile"


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"live_calls_hide": True}, "live_calls_hide"),
        ({"filter_mode": "sometimes"}, "filter_mode"),
        ({"request_id_header": "no"}, "request_id_header"),
        ({"name": "x"}, "name"),
    ],
)
def test_a_bad_profile_file_names_the_setting(
    tmp_path: Path, settings: dict[str, Any], named: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"callsid_resolver_profile": 1, "settings": settings}))
    with pytest.raises(ValueError, match=named):
        load_profile(path)


def test_a_file_that_is_not_a_profile_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"conversations": []}')
    with pytest.raises(ValueError, match="not a profile"):
        load_profile(path)


# -- live calls -------------------------------------------------------------------------------
def test_a_live_call_hides_its_ids_until_it_ends() -> None:
    emulator = Emulator(recording="default", profile="observed")
    with client(emulator) as observed:
        live = get(observed, LIVE_ID)
        assert "phone_call" not in live["metadata"]
        assert variables(live) == {}
        assert live["transcript"] == []
        assert get(observed, DONE_ID)["metadata"]["phone_call"]["call_sid"] == DONE_SID
        emulator.end_session(LIVE_ID)
        ended = get(observed, LIVE_ID)
        assert ended["metadata"]["phone_call"]["call_sid"] == LIVE_SID
        assert variables(ended)["system__call_sid"] == LIVE_SID
        assert ended["transcript"]


def test_the_documented_live_call_shows_everything() -> None:
    with client(Emulator(recording="default")) as http:
        assert get(http, LIVE_ID)["metadata"]["phone_call"]["call_sid"] == LIVE_SID


@pytest.mark.parametrize("profile", ["documented", "observed"])
def test_the_filter_sees_live_calls_only_when_the_profile_says(profile: str) -> None:
    emulator = Emulator(recording="default", profile=profile)
    with client(emulator) as http:
        params = {"dynamic_variable_filter": f"system__call_sid:eq:{LIVE_SID}"}
        found = ids(http.get(LIST, params=params).json())
        assert found == ([] if profile == "observed" else [LIVE_ID])
        emulator.end_session(LIVE_ID)
        assert ids(http.get(LIST, params=params).json()) == [LIVE_ID]


def test_a_live_row_has_no_direction_when_its_phone_record_is_hidden(
    observed: httpx.Client,
) -> None:
    rows = {r["conversation_id"]: r for r in observed.get(LIST).json()["conversations"]}
    assert rows[LIVE_ID]["direction"] is None
    assert rows[DONE_ID]["direction"] == "inbound"


def test_filter_mode_empty_accepts_the_filter_and_matches_nothing() -> None:
    emulator = Emulator(recording="default", profile=OBSERVED)
    emulator.filter_mode = "empty"
    assert emulator.profile.filter_mode == "empty"
    with client(emulator) as http:
        filtered = http.get(
            LIST, params={"dynamic_variable_filter": f"system__call_sid:eq:{DONE_SID}"}
        )
        assert filtered.status_code == 200
        assert filtered.json()["conversations"] == []
        assert ids(http.get(LIST).json())  # the listing itself still works
        bad = http.get(LIST, params={"dynamic_variable_filter": "no-operator"})
        assert bad.status_code == 422  # still validated


# -- null variables, numbers ------------------------------------------------------------------
def test_conversations_without_a_phone_record_have_null_variables(observed: httpx.Client) -> None:
    web = get(observed, WEB_ID)
    assert web["conversation_initiation_client_data"]["dynamic_variables"] is None
    assert variables(get(observed, DONE_ID))["system__call_duration_secs"] == 0  # a number


# -- SIP ----------------------------------------------------------------------------------------
def test_a_sip_call_shows_a_uuid_and_an_rfc3261_call_id(observed: httpx.Client) -> None:
    sip = get(observed, SIP_ID)
    phone = sip["metadata"]["phone_call"]
    assert phone["call_sid"] == SIP_UUID
    call_id = phone["call_id"]
    word, _, host = call_id.partition("@")
    assert word.isalnum()
    assert host.startswith("[2001:db8::")
    assert host.endswith("]")
    assert variables(sip)["system__call_id"] == call_id
    assert variables(sip)["system__call_sid"] is None  # a Twilio-only variable
    by_call_id = {"dynamic_variable_filter": f"system__call_id:eq:{call_id}"}
    assert ids(observed.get(LIST, params=by_call_id).json()) == [SIP_ID]
    by_uuid = {"dynamic_variable_filter": f"system__call_sid:eq:{SIP_UUID}"}
    assert ids(observed.get(LIST, params=by_uuid).json()) == []


def test_a_sip_call_with_a_twilio_sid_gets_it_as_its_call_id() -> None:
    emulator = Emulator(recording="live_calls", profile="observed")
    emulator.end_session("conv_fake0sip0trunk0live00000007")
    shown = emulator.shown("conv_fake0sip0trunk0live00000007")
    assert shown is not None
    phone = shown["metadata"]["phone_call"]
    assert phone["call_id"] == "CAdeadbeef000000000000000000000007"
    assert len(phone["call_sid"]) == 36
    assert phone["call_sid"].count("-") == 4


def test_the_documented_sip_call_is_stored_as_recorded() -> None:
    with client(Emulator(recording="default")) as http:
        phone = get(http, SIP_ID)["metadata"]["phone_call"]
    assert phone["call_sid"] == phone["call_id"] == SIP_UUID


# -- errors -------------------------------------------------------------------------------------
def test_typed_errors_carry_their_request_id_in_the_body_and_x_trace_id(
    observed: httpx.Client,
) -> None:
    missing = observed.get(f"{LIST}/conv_nope")
    assert missing.status_code == 404
    detail = missing.json()["detail"]
    assert set(detail) == {"type", "code", "message", "request_id", "param"}
    assert detail["code"] == "conversation_not_found"
    assert "status" not in detail
    assert "request-id" not in missing.headers
    assert missing.headers["x-trace-id"] == detail["request_id"]


def test_a_missing_key_needs_authorization() -> None:
    with client(Emulator(profile="observed"), key=None) as http:
        reply = http.get(LIST)
    assert reply.status_code == 401
    detail = reply.json()["detail"]
    assert detail["code"] == "needs_authorization"
    assert detail["message"].startswith("Neither authorization header nor xi-api-key received")


def test_typed_429_codes_tell_rate_from_concurrency() -> None:
    emulator = Emulator(profile="observed")
    emulator.inject(429, retry_after=1)
    emulator.inject(429, code="concurrent_limit_exceeded")
    with client(emulator) as http:
        first, second = http.get(LIST), http.get(LIST)
    assert first.json()["detail"]["code"] == "rate_limit_exceeded"
    assert first.headers["retry-after"] == "1"
    assert second.json()["detail"]["code"] == "concurrent_limit_exceeded"


def test_a_typed_422_names_the_parameter(observed: httpx.Client) -> None:
    reply = observed.get(LIST, params={"page_size": 0})
    assert reply.status_code == 422
    detail = reply.json()["detail"]
    assert (detail["type"], detail["code"], detail["param"]) == (
        "validation_error",
        "invalid_parameters",
        "page_size",
    )


def test_legacy_errors_are_unchanged_under_the_documented_profile() -> None:
    with client(Emulator()) as http:
        reply = http.get(f"{LIST}/conv_nope")
    assert reply.json() == {
        "detail": {"status": "conversation_not_found", "message": "Conversation not found"}
    }
    assert reply.headers["request-id"].startswith("emu_")
    assert "x-trace-id" not in reply.headers


# -- remote control -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Emulator, RemoteEmulator]]:
    emulator = Emulator(recording="default")
    with EmulatorServer(emulator) as server:
        remote = RemoteEmulator(server.base_url)
        yield emulator, remote
        remote.close()


def test_the_control_endpoint_takes_a_profile(served: tuple[Emulator, RemoteEmulator]) -> None:
    emulator, remote = served
    remote.profile = "observed"
    assert emulator.profile == OBSERVED
    assert remote.profile == OBSERVED
    remote.configure(profile=EmulatorProfile(name="x", filter_mode="ignore"))
    assert emulator.profile.filter_mode == "ignore"
    remote.configure(profile="observed", filter_mode="reject")  # the profile first, then the knob
    assert emulator.profile == EmulatorProfile(**{**OBSERVED.__dict__, "filter_mode": "reject"})
    remote.profile = "documented"
    assert emulator.profile == DOCUMENTED


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"monitor_refusal": "enterprise"}, "monitor_refusal"),
        ({"filter_mode": "maybe"}, "filter_mode"),
        ({"latency": -1}, "latency"),
        ({"rate_limit_every": True}, "rate_limit_every"),
        ({"fail_status": 200}, "fail_status"),
        ({"profile": "optimistic"}, "profile"),
        ({"profile": {"callsid_resolver_profile": 1, "settings": {"x": 1}}}, "profile"),
        ({"profile": None}, "profile"),
        ({"profile": 5}, "profile"),
        ({"profile": ["documented"]}, "profile"),
        ({"profile": "/no/such/profile.json"}, "profile"),
        ({"latncy": 0.1}, "latncy"),
    ],
)
def test_the_control_endpoint_refuses_bad_settings_by_name(
    served: tuple[Emulator, RemoteEmulator], settings: dict[str, Any], named: str
) -> None:
    emulator, remote = served
    before = (emulator.profile, emulator.latency, emulator.monitor_refusal, emulator.agent_reply)
    body = {"agent_reply": "changed", **settings}  # a good setting along: not applied either
    reply = httpx.post(f"{remote.base_url}/_emulator/settings", json=body)
    assert reply.status_code == 422
    assert reply.json()["detail"]["setting"] == named
    after = (emulator.profile, emulator.latency, emulator.monitor_refusal, emulator.agent_reply)
    assert after == before
    with pytest.raises(ValueError, match=named):
        remote.configure(**settings)


def test_remote_refuses_an_attribute_that_is_no_setting(
    served: tuple[Emulator, RemoteEmulator],
) -> None:
    _, remote = served
    with pytest.raises(AttributeError, match="latncy"):
        remote.latncy = 0.1  # type: ignore[attr-defined]
    assert not hasattr(remote, "latncy")
