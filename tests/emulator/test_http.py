"""The HTTP endpoints answer as docs/protocol.md says: auth, list, get, signed URL, outbound."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from callsid_resolver.testing import Emulator, EmulatorServer, synthetic_conversations

from .conftest import (
    API,
    DONE_ID,
    DONE_SID,
    KEY,
    LIST,
    LIVE_ID,
    LIVE_SID,
    OUTBOUND_ID,
    OUTBOUND_SID,
    SIP_ID,
    SIP_NUMBER,
    TWILIO_NUMBER,
    WEB_ID,
    example,
    ids,
    walk,
)

ENDPOINTS = [
    ("GET", LIST),
    ("GET", f"{LIST}/{LIVE_ID}"),
    ("GET", "/v1/convai/conversation/get-signed-url?agent_id=agent_x"),
    ("POST", "/v1/convai/twilio/outbound-call"),
]


# -- auth and routing -----------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_needs_a_key(emu: Emulator, method: str, path: str) -> None:
    with httpx.Client(transport=emu.transport(), base_url=API) as bare:
        missing = bare.request(method, path)
        empty = bare.request(method, path, headers={"xi-api-key": ""})
    for response in (missing, empty):
        assert response.status_code == 401
        assert response.json() == example("error_401_invalid_api_key")


def test_a_configured_key_is_the_only_one_accepted() -> None:
    strict = Emulator(recording="default", api_key="right")
    with httpx.Client(transport=strict.transport(), base_url=API) as c:
        assert c.get(LIST, headers={"xi-api-key": "wrong"}).status_code == 401
        assert c.get(LIST, headers={"xi-api-key": "right"}).status_code == 200
    loose = Emulator(recording="default")
    with httpx.Client(transport=loose.transport(), base_url=API) as c:
        assert c.get(LIST, headers={"xi-api-key": "anything"}).status_code == 200


def test_unknown_paths_and_methods_answer_like_fastapi(http: httpx.Client) -> None:
    unknown = http.get("/v1/convai/nothing-here")
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "Not Found"})
    nested = http.get(f"{LIST}/{LIVE_ID}/extra")
    assert nested.status_code == 404
    wrong = http.post(LIST)
    assert (wrong.status_code, wrong.json()) == (405, {"detail": "Method Not Allowed"})
    # Routing comes before auth, as on FastAPI: no key still gets the 404.
    assert http.get("/v1/nope", headers={"xi-api-key": ""}).status_code == 404


def test_every_response_carries_a_unique_request_id(http: httpx.Client) -> None:
    responses = [http.get(LIST), http.get(f"{LIST}/conv_nope"), http.get("/nope")]
    request_ids = [r.headers["request-id"] for r in responses]
    assert all(i.startswith("emu_") for i in request_ids)
    assert len(set(request_ids)) == 3


# -- get ------------------------------------------------------------------------------------------
def test_get_returns_the_stored_object_and_404s_unknown_ids(
    emu: Emulator, http: httpx.Client
) -> None:
    got = http.get(f"{LIST}/{DONE_ID}")
    assert got.status_code == 200
    assert got.json() == emu.conversation(DONE_ID)
    assert got.json()["metadata"]["phone_call"]["call_sid"] == DONE_SID
    missing = http.get(f"{LIST}/conv_nope")
    assert missing.status_code == 404
    assert missing.json()["detail"]["status"] == "conversation_not_found"
    assert missing.json()["detail"]["message"]


# -- list: validation -----------------------------------------------------------------------------
def test_page_size_out_of_range_is_a_422_in_the_api_shape(http: httpx.Client) -> None:
    too_big = http.get(LIST, params={"page_size": 500})
    assert too_big.status_code == 422
    assert too_big.json() == example("error_422_validation")
    too_small = http.get(LIST, params={"page_size": 0}).json()["detail"][0]
    assert (too_small["type"], too_small["loc"], too_small["ctx"]) == (
        "greater_than_equal",
        ["query", "page_size"],
        {"ge": 1},
    )
    not_int = http.get(LIST, params={"page_size": "ten"}).json()["detail"][0]
    assert (not_int["type"], not_int["input"]) == ("int_parsing", "ten")
    assert http.get(LIST, params={"page_size": 100}).status_code == 200
    assert http.get(LIST, params={"page_size": 1}).status_code == 200


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"sort_direction": "sideways"}, "sort_direction"),
        ({"exclude_statuses": "active"}, "exclude_statuses"),
        ({"call_start_after_unix": "yesterday"}, "call_start_after_unix"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
        ({"cursor": "%%%"}, "cursor"),
        ({"dynamic_variable_filter": "no_operator"}, "dynamic_variable_filter"),
        ({"dynamic_variable_params": "x:like:1"}, "dynamic_variable_params"),
        ({"dynamic_variable_params": "x:gt:many"}, "dynamic_variable_params"),
    ],
)
def test_bad_query_values_are_422s_naming_the_parameter(
    http: httpx.Client, params: dict[str, str], name: str
) -> None:
    response = http.get(LIST, params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", name]


def test_a_cursor_of_one_sort_direction_is_refused_for_the_other(http: httpx.Client) -> None:
    cursor = http.get(LIST, params={"page_size": 1}).json()["next_cursor"]
    flipped = http.get(LIST, params={"cursor": cursor, "sort_direction": "asc"})
    assert flipped.status_code == 422


# -- list: pages ----------------------------------------------------------------------------------
@pytest.mark.parametrize("direction", ["desc", "asc"])
def test_pages_walk_every_conversation_exactly_once(
    emu: Emulator, http: httpx.Client, direction: str
) -> None:
    for conversation in synthetic_conversations(95, seed=4):
        emu.add_conversation(conversation)
    seen, pages = walk(http, page_size=7, sort_direction=direction)
    assert len(seen) == len(set(seen)) == 100
    assert pages == 15
    starts = [emu.conversation(i)["metadata"]["start_time_unix_secs"] for i in seen]  # type: ignore[index]
    assert starts == sorted(starts, reverse=direction == "desc")


def test_both_directions_are_mirror_images_even_with_equal_start_times(http: httpx.Client) -> None:
    # The web chat and the finished inbound call of the default recording start in the same second.
    desc, _ = walk(http, page_size=1)
    asc, _ = walk(http, page_size=2, sort_direction="asc")
    assert desc == asc[::-1]
    assert desc == [LIVE_ID, OUTBOUND_ID, SIP_ID, DONE_ID, WEB_ID]


def test_default_page_size_is_30(emu: Emulator, http: httpx.Client) -> None:
    for conversation in synthetic_conversations(40, seed=1):
        emu.add_conversation(conversation)
    page = http.get(LIST).json()
    assert len(page["conversations"]) == 30
    assert page["has_more"] is True


def test_a_call_placed_between_two_pages_does_not_shift_the_walk(http: httpx.Client) -> None:
    first = http.get(LIST, params={"page_size": 2}).json()
    body = {"agent_id": "agent_x", "agent_phone_number_id": "phnum_x", "to_number": "+15550100999"}
    assert http.post("/v1/convai/twilio/outbound-call", json=body).status_code == 200
    rest, _ = walk(http, page_size=2, cursor=first["next_cursor"])
    assert ids(first) + rest == [LIVE_ID, OUTBOUND_ID, SIP_ID, DONE_ID, WEB_ID]


def test_the_last_page_is_exact(http: httpx.Client) -> None:
    page = http.get(LIST, params={"page_size": 5}).json()
    assert (len(page["conversations"]), page["has_more"], page["next_cursor"]) == (5, False, None)


# -- list: filters --------------------------------------------------------------------------------
def listed(http: httpx.Client, **params: Any) -> list[str]:
    response = http.get(LIST, params=params)
    assert response.status_code == 200, response.text
    return ids(response.json())


def test_plain_filters(http: httpx.Client) -> None:
    assert listed(http, agent_id="agent_other") == []
    assert len(listed(http, agent_id="agent_fake0example0agent0000000001")) == 5
    assert listed(http, phone_number_ids=SIP_NUMBER) == [SIP_ID]
    both = listed(http, phone_number_ids=[SIP_NUMBER, TWILIO_NUMBER])
    assert both == [LIVE_ID, OUTBOUND_ID, SIP_ID, DONE_ID]
    assert listed(http, conversation_initiation_source="sip_trunk") == [SIP_ID]
    assert listed(http, conversation_initiation_source="widget") == [WEB_ID]
    assert listed(http, exclude_statuses=["processing", "done", "failed"]) == [LIVE_ID]
    assert listed(http, call_successful="unknown") == [LIVE_ID]


def test_start_time_window_is_inclusive_on_both_ends(http: httpx.Client) -> None:
    assert listed(http, call_start_after_unix=1786003600) == [LIVE_ID, OUTBOUND_ID]
    assert listed(http, call_start_before_unix=1786000000) == [DONE_ID, WEB_ID]
    window = listed(http, call_start_after_unix=1786000001, call_start_before_unix=1786003600)
    assert window == [OUTBOUND_ID, SIP_ID]
    assert listed(http, call_start_after_unix=1786000001, sort_direction="asc") == [
        SIP_ID,
        OUTBOUND_ID,
        LIVE_ID,
    ]


def test_dynamic_variable_filters(http: httpx.Client) -> None:
    f = "dynamic_variable_filter"
    assert listed(http, **{f: f"system__call_sid:eq:{LIVE_SID}"}) == [LIVE_ID]
    assert listed(http, **{f: "system__call_sid:eq:CA00000000000000000000000000000000"}) == []
    assert listed(http, **{f: "system__call_sid:eq:"}) == [WEB_ID]  # not set
    assert len(listed(http, **{f: "system__call_sid:neq:"})) == 4  # set
    assert listed(http, **{f: f"system__call_sid:in:{LIVE_SID}|{OUTBOUND_SID}"}) == [
        LIVE_ID,
        OUTBOUND_ID,
    ]
    assert listed(http, dynamic_variable_params="customer_tier:eq:gold") == [SIP_ID, DONE_ID]
    assert len(listed(http, dynamic_variable_params="system__call_duration_secs:eq:0")) == 5


def test_dynamic_variables_compare_as_text_and_numerically_for_gt_lt(
    emu: Emulator, http: httpx.Client
) -> None:
    a, b, c = synthetic_conversations(3, seed=2, phone_share=0)
    a["conversation_initiation_client_data"]["dynamic_variables"] |= {"score": 7, "vip": True}
    b["conversation_initiation_client_data"]["dynamic_variables"] |= {"score": "12"}
    for conversation in (a, b, c):
        emu.add_conversation(conversation)
    a_id, b_id = a["conversation_id"], b["conversation_id"]
    p = "dynamic_variable_params"
    assert listed(http, **{p: "score:eq:7"}) == [a_id]
    assert listed(http, **{p: "vip:eq:true"}) == [a_id]
    assert listed(http, **{p: "score:gt:7"}) == [b_id]
    assert listed(http, **{p: "score:gte:7", "sort_direction": "asc"}) == [a_id, b_id]
    assert listed(http, **{p: "score:lt:12.5", "sort_direction": "asc"}) == [a_id, b_id]
    assert listed(http, **{p: "score:lte:7"}) == [a_id]
    assert listed(http, **{p: "score:in:12|13"}) == [b_id]


def test_the_single_filter_and_the_repeated_params_are_and_ed(http: httpx.Client) -> None:
    params = {
        "dynamic_variable_filter": "customer_tier:eq:gold",
        "dynamic_variable_params": [f"system__call_sid:neq:{DONE_SID}", "system__caller_id:neq:"],
    }
    assert listed(http, **params) == [SIP_ID]


def test_filters_combine_with_pages(emu: Emulator, http: httpx.Client) -> None:
    history = synthetic_conversations(300, seed=3)
    for conversation in history:
        emu.add_conversation(conversation)
    sip = {
        c["conversation_id"]
        for c in history
        if c["metadata"]["conversation_initiation_source"] == "sip_trunk"
    }
    seen, _ = walk(http, page_size=4, conversation_initiation_source="sip_trunk")
    assert set(seen) == sip | {SIP_ID}
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize(
    ("mode", "status", "count"), [("support", 200, 1), ("reject", 422, None), ("ignore", 200, 5)]
)
def test_filter_modes(
    emu: Emulator, http: httpx.Client, mode: Any, status: int, count: int | None
) -> None:
    emu.filter_mode = mode
    for name in ("dynamic_variable_filter", "dynamic_variable_params"):
        response = http.get(LIST, params={name: f"system__call_sid:eq:{LIVE_SID}"})
        assert response.status_code == status
        if count is None:
            item = response.json()["detail"][0]
            assert (item["type"], item["loc"]) == ("extra_forbidden", ["query", name])
        else:
            assert len(response.json()["conversations"]) == count
    assert http.get(LIST).status_code == 200  # an unfiltered list works in every mode


# -- list: rows -----------------------------------------------------------------------------------
def test_summaries_hide_sids_numbers_and_variables(http: httpx.Client) -> None:
    page = http.get(LIST).json()
    text = str(page)
    for hidden in (LIVE_SID, DONE_SID, "phnum_", "system__", "dynamic_variables", "+1555"):
        assert hidden not in text
    rows = {c["conversation_id"]: c for c in page["conversations"]}
    live, web, outbound = rows[LIVE_ID], rows[WEB_ID], rows[OUTBOUND_ID]
    assert (live["status"], live["direction"], live["call_successful"]) == (
        "in-progress",
        "inbound",
        "unknown",
    )
    assert web["direction"] is None
    assert (outbound["direction"], outbound["call_successful"]) == ("outbound", "success")
    assert rows[DONE_ID]["tool_names"] == ["lookup_order"]  # from its transcript's tool_calls
    # Counts come from the stored transcript (the shared list example is not consistent with the
    # shared GET examples here, so the emulator follows the GET objects it serves).
    stored = http.get(f"{LIST}/{OUTBOUND_ID}").json()["transcript"]
    assert outbound["message_count"] == sum(1 for t in stored if t.get("message")) > 0
    expected = example("conversations_list_page")["conversations"]
    for row in expected:
        mine = rows[row["conversation_id"]]
        for name in ("start_time_unix_secs", "call_duration_secs", "status", "direction"):
            assert mine[name] == row[name], name
    # A live call is listed with zero counts although its GET already shows turns.
    assert (live["message_count"], live["user_message_count"]) == (0, 0)


def test_summary_mode_include_adds_the_transcript_summary(http: httpx.Client) -> None:
    plain = http.get(LIST).json()["conversations"]
    assert all(c["transcript_summary"] is None for c in plain)
    full = http.get(LIST, params={"summary_mode": "include"}).json()["conversations"]
    assert {c["conversation_id"] for c in full if c["transcript_summary"]} == {
        OUTBOUND_ID,
        SIP_ID,
        DONE_ID,
        WEB_ID,
    }


# -- signed URL and outbound call -----------------------------------------------------------------
def test_signed_url_in_process_points_at_the_public_host(http: httpx.Client) -> None:
    url = http.get("/v1/convai/conversation/get-signed-url", params={"agent_id": "agent_x"})
    assert url.status_code == 200
    signed = url.json()["signed_url"]
    assert signed.startswith("wss://api.elevenlabs.io/v1/convai/conversation?agent_id=agent_x&")
    assert "conversation_signature=" in signed
    missing = http.get("/v1/convai/conversation/get-signed-url")
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["query", "agent_id"]


def test_signed_url_served_points_at_the_server(
    server: EmulatorServer, served: httpx.Client
) -> None:
    signed = served.get("/v1/convai/conversation/get-signed-url?agent_id=a").json()["signed_url"]
    assert signed.startswith(f"{server.ws_url}/v1/convai/conversation?agent_id=a&")


def test_outbound_call_creates_a_resolvable_conversation(emu: Emulator, http: httpx.Client) -> None:
    body = {
        "agent_id": "agent_x",
        "agent_phone_number_id": "phnum_x",
        "to_number": "+15550100999",
        "conversation_initiation_client_data": {"dynamic_variables": {"order": "A-1"}},
    }
    made = http.post("/v1/convai/twilio/outbound-call", json=body)
    assert made.status_code == 200
    answer = made.json()
    assert set(answer) == {"success", "message", "conversation_id", "callSid"}
    assert (answer["success"], answer["message"]) == (True, "Success")
    sid, conversation_id = answer["callSid"], answer["conversation_id"]
    assert sid.startswith("CA")
    assert len(sid) == 34
    assert int(sid[2:], 16) >= 0
    assert conversation_id.startswith("conv_")
    assert len(conversation_id) == 33
    found = listed(http, dynamic_variable_filter=f"system__call_sid:eq:{sid}")
    assert found == [conversation_id]
    assert listed(http, exclude_statuses=["processing", "done", "failed"])[0] == conversation_id
    conversation = http.get(f"{LIST}/{conversation_id}").json()
    assert conversation["status"] == "initiated"
    assert conversation["metadata"]["phone_call"]["call_sid"] == sid
    assert conversation["metadata"]["phone_call"]["direction"] == "outbound"
    variables = conversation["conversation_initiation_client_data"]["dynamic_variables"]
    assert (variables["system__call_sid"], variables["order"]) == (sid, "A-1")
    second = http.post("/v1/convai/twilio/outbound-call", json=body).json()
    assert second["callSid"] != sid
    assert emu.count("outbound_call") == 2


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"agent_id": "a"}, ["agent_phone_number_id", "to_number"]),
        ({}, ["agent_id", "agent_phone_number_id", "to_number"]),
    ],
)
def test_outbound_call_validates_its_body(
    http: httpx.Client, body: Any, missing: list[str]
) -> None:
    response = http.post("/v1/convai/twilio/outbound-call", json=body)
    assert response.status_code == 422
    assert [item["loc"] for item in response.json()["detail"]] == [["body", n] for n in missing]
    bad = http.post("/v1/convai/twilio/outbound-call", content=b"{not json")
    assert (bad.status_code, bad.json()["detail"][0]["type"]) == (422, "json_invalid")


# -- the served app behaves as the transport ------------------------------------------------------
def test_the_served_emulator_answers_like_the_transport(
    server: EmulatorServer, served: httpx.Client, http: httpx.Client
) -> None:
    for path, params in [
        (LIST, {"page_size": 2}),
        (f"{LIST}/{LIVE_ID}", {}),
        (f"{LIST}/x", {}),
        (LIST, {"page_size": 0}),
    ]:
        a, b = served.get(path, params=params), http.get(path, params=params)
        assert (a.status_code, a.json()) == (b.status_code, b.json())
    assert server.base_url.startswith("http://127.0.0.1:")
    assert server.port > 0


async def test_the_asgi_app_serves_http_through_httpx(emu: Emulator) -> None:
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(
        transport=transport, base_url=API, headers={"xi-api-key": KEY}
    ) as c:
        page = (await c.get(LIST, params={"page_size": 3})).json()
        assert len(page["conversations"]) == 3
        signed = (await c.get("/v1/convai/conversation/get-signed-url?agent_id=a")).json()
        assert signed["signed_url"].startswith("wss://api.elevenlabs.io/v1/convai/conversation?")
