"""The emulator behaves as the API does: checked with plain httpx, the official SDK, and the
library's own resolver (the core suite's scenarios, replayed against it)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from elevenlabs import ElevenLabs
from elevenlabs.types import GetConversationResponseModel, GetConversationsPageResponseModel

from callsid_resolver import (
    AsyncCallSidResolver,
    AsyncElevenLabsClient,
    CallSidResolver,
    ElevenLabsClient,
    RetryPolicy,
)
from callsid_resolver.testing import (
    Emulator,
    EmulatorServer,
    conversation_at_depth,
    list_recordings,
    load_recording,
    record_conversations,
    scrub_conversation,
    synthetic_conversations,
)
from callsid_resolver.testing._server import bind

KEY = "test-key"
LIVE_SID = "CAdeadbeef000000000000000000000001"


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(recording="default")


@pytest.fixture
def http(emulator: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(
        transport=emulator.transport(),
        base_url="https://api.elevenlabs.io",
        headers={"xi-api-key": KEY},
    ) as client:
        yield client


@pytest.fixture
def server(emulator: Emulator) -> Iterator[EmulatorServer]:
    with EmulatorServer(emulator) as running:
        yield running


def ids(page: dict[str, Any]) -> list[str]:
    return [c["conversation_id"] for c in page["conversations"]]


def test_auth_answers_like_the_api(emulator: Emulator, http: httpx.Client) -> None:
    missing = http.get("/v1/convai/conversations", headers={"xi-api-key": ""})
    assert missing.status_code == 401
    assert missing.json() == load_json("error_401_invalid_api_key")
    strict = Emulator(recording="default", api_key="right")
    with httpx.Client(transport=strict.transport(), base_url="https://x") as c:
        assert c.get("/v1/convai/conversations", headers={"xi-api-key": "wrong"}).status_code == 401
        assert c.get("/v1/convai/conversations", headers={"xi-api-key": "right"}).status_code == 200


def test_pages_walk_every_conversation_once_both_ways(
    http: httpx.Client, emulator: Emulator
) -> None:
    for conv in synthetic_conversations(95, seed=4):
        emulator.add_conversation(conv)
    for direction in ("desc", "asc"):
        seen: list[str] = []
        params: dict[str, Any] = {"page_size": 7, "sort_direction": direction}
        while True:
            page = http.get("/v1/convai/conversations", params=params).json()
            seen += ids(page)
            if not page["has_more"]:
                assert page["next_cursor"] is None
                break
            params["cursor"] = page["next_cursor"]
        assert len(seen) == len(set(seen)) == 100
        starts = [emulator.conversation(i)["metadata"]["start_time_unix_secs"] for i in seen]  # type: ignore[index]
        assert starts == sorted(starts, reverse=direction == "desc")


def test_filters(http: httpx.Client, emulator: Emulator) -> None:
    def listed(**params: Any) -> list[str]:
        return ids(http.get("/v1/convai/conversations", params=params).json())

    assert listed(dynamic_variable_filter=f"system__call_sid:eq:{LIVE_SID}") == [
        "conv_fake0inbound0live00000000001"
    ]
    assert listed(dynamic_variable_params="customer_tier:eq:gold") == [
        "conv_fake0sip0trunk0done00000006",
        "conv_fake0inbound0done00000000002",
    ]
    assert len(listed(dynamic_variable_filter="system__call_sid:eq:")) == 1  # the web chat
    assert len(listed(dynamic_variable_filter="system__call_sid:neq:")) == 4
    both = f"system__call_sid:in:{LIVE_SID}|CAfeedface00000000000000000000f00d"
    assert len(listed(dynamic_variable_filter=both)) == 2
    assert listed(exclude_statuses=["processing", "done", "failed"]) == [
        "conv_fake0inbound0live00000000001"
    ]
    assert listed(conversation_initiation_source="sip_trunk") == [
        "conv_fake0sip0trunk0done00000006"
    ]
    assert listed(phone_number_ids="phnum_fake0sip0number00000000002") == [
        "conv_fake0sip0trunk0done00000006"
    ]
    assert len(listed(call_start_after_unix=1786003600)) == 2
    assert len(listed(call_start_before_unix=1786000000)) == 2
    assert listed(agent_id="agent_other") == []


def test_validation_and_not_found_bodies(http: httpx.Client) -> None:
    bad = http.get("/v1/convai/conversations", params={"page_size": 500})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "page_size"]
    missing = http.get("/v1/convai/conversations/conv_nope")
    assert missing.status_code == 404
    assert missing.json()["detail"]["status"] == "conversation_not_found"
    assert missing.headers["request-id"].startswith("emu_")


@pytest.mark.parametrize("mode", ["support", "reject", "ignore"])
def test_filter_modes(http: httpx.Client, emulator: Emulator, mode: str) -> None:
    emulator.filter_mode = mode  # type: ignore[assignment]
    r = http.get(
        "/v1/convai/conversations",
        params={"dynamic_variable_filter": f"system__call_sid:eq:{LIVE_SID}"},
    )
    expected = {"support": (200, 1), "reject": (422, None), "ignore": (200, 5)}[mode]
    assert r.status_code == expected[0]
    if expected[1] is not None:
        assert len(r.json()["conversations"]) == expected[1]


def test_fault_knobs_and_counters(http: httpx.Client, emulator: Emulator) -> None:
    emulator.inject(429, retry_after="7")
    emulator.inject(503, endpoint="get")
    r = http.get("/v1/convai/conversations")
    assert (r.status_code, r.headers["retry-after"]) == (429, "7")
    assert http.get("/v1/convai/conversations").status_code == 200  # the 503 waits for a GET
    assert http.get("/v1/convai/conversations/conv_fake0inbound0live00000000001").status_code == 503
    emulator.inject(malformed=True)
    with pytest.raises(json.JSONDecodeError):
        http.get("/v1/convai/conversations").json()
    emulator.inject(drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/v1/convai/conversations")
    emulator.rate_limit_every = 2
    assert [http.get("/v1/convai/conversations").status_code for _ in range(4)] in (
        [200, 429] * 2,
        [429, 200] * 2,
    )
    assert emulator.count("list") == 8
    assert emulator.count("get") == 1
    emulator.reset_counts()
    assert emulator.total_requests == 0


def test_the_library_retries_through_emulated_faults(emulator: Emulator) -> None:
    emulator.inject(429, retry_after="0")
    emulator.inject(502)
    emulator.inject(drop=True)
    with ElevenLabsClient(
        KEY, transport=emulator.transport(), retry=RetryPolicy(backoff_initial=0.001)
    ) as c:
        assert len(c.list_conversations().conversations) == 5
    assert emulator.count("list") == 4


def test_outbound_call_creates_a_resolvable_conversation(
    http: httpx.Client, emulator: Emulator
) -> None:
    body = {"agent_id": "agent_x", "agent_phone_number_id": "phnum_x", "to_number": "+15550100999"}
    made = http.post("/v1/convai/twilio/outbound-call", json=body).json()
    assert made["success"] is True
    assert http.post("/v1/convai/twilio/outbound-call", json={"agent_id": "a"}).status_code == 422
    with ElevenLabsClient(KEY, transport=emulator.transport()) as client:
        r = CallSidResolver(client).resolve(made["callSid"], agent_id="agent_x")
    assert (r.conversation_id, r.status, r.source) == (
        made["conversation_id"],
        "initiated",
        "filter",
    )


def test_latency_applies_per_request(emulator: Emulator) -> None:
    emulator.latency = 0.05
    with ElevenLabsClient(KEY, transport=emulator.transport()) as c:
        import time

        started = time.perf_counter()
        c.list_conversations()
        assert time.perf_counter() - started >= 0.05


def test_synthetic_histories_are_deterministic_and_realistic() -> None:
    a = synthetic_conversations(2000, seed=9, live=3)
    assert a == synthetic_conversations(2000, seed=9, live=3)
    assert a != synthetic_conversations(2000, seed=10, live=3)
    assert len({c["conversation_id"] for c in a}) == 2000
    kinds = {(c["metadata"].get("phone_call") or {}).get("type") for c in a}
    assert kinds == {"twilio", "sip_trunking", None}
    assert [c["status"] for c in a[-3:]] == ["in-progress"] * 3
    assert conversation_at_depth(a, 1) is a[-1]
    for conv in a[:50]:
        GetConversationResponseModel.model_validate(conv)


def test_the_official_sdk_works_against_the_served_emulator(server: EmulatorServer) -> None:
    http = httpx.Client()  # the SDK never closes a client it made itself
    sdk = ElevenLabs(api_key=KEY, base_url=server.base_url, httpx_client=http)
    page = sdk.conversational_ai.conversations.list(page_size=2)
    assert page.has_more
    assert len(page.conversations) == 2
    rest = sdk.conversational_ai.conversations.list(page_size=10, cursor=page.next_cursor)
    assert len(rest.conversations) == 3
    conv = sdk.conversational_ai.conversations.get("conv_fake0inbound0done00000000002")
    assert conv.metadata.phone_call is not None
    assert conv.metadata.phone_call.call_sid == "CAdeadbeef00000000000000000000beef"  # type: ignore[union-attr]
    signed = sdk.conversational_ai.conversations.get_signed_url(agent_id="agent_x")
    assert signed.signed_url.startswith(server.ws_url)
    http.close()


def test_every_served_payload_parses_with_the_sdk_models(http: httpx.Client) -> None:
    page = http.get("/v1/convai/conversations", params={"page_size": 100}).json()
    GetConversationsPageResponseModel.model_validate(page)
    for cid in ids(page):
        GetConversationResponseModel.model_validate(
            http.get(f"/v1/convai/conversations/{cid}").json()
        )


def test_recordings_are_bundled_and_scrubbed() -> None:
    assert "default" in list_recordings()
    text = json.dumps(load_recording("default"))
    assert "+1555" in text
    assert "sk_" not in text
    with pytest.raises(LookupError, match="bundled"):
        load_recording("nope")


def test_scrubbing_fakes_numbers_and_masks_secrets() -> None:
    conv = {
        "metadata": {
            "phone_call": {"external_number": "+447700900123", "agent_number": "+14155550100"}
        },
        "note": "wss://x/y?agent_id=a&conversation_signature=SECRET123 sk_abcdefghijklmnopqrstuv",
    }
    out = scrub_conversation(conv)
    text = json.dumps(out)
    for secret in ("+447700900123", "SECRET123", "sk_abcdefghijklmnopqrstuv"):
        assert secret not in text
    external = out["metadata"]["phone_call"]["external_number"]
    assert external.startswith("+1555")
    assert scrub_conversation(conv)["metadata"]["phone_call"]["external_number"] == external


def test_record_mode_captures_through_any_transport(emulator: Emulator, tmp_path: Any) -> None:
    path = record_conversations(
        "https://api.elevenlabs.io",
        KEY,
        tmp_path / "rec.json",
        limit=3,
        transport=emulator.transport(),
    )
    document = json.loads(path.read_text())
    assert document["format"] == 1
    assert len(document["conversations"]) == 3
    assert KEY not in path.read_text()
    assert "+15550100123" not in path.read_text()


async def test_resolver_over_the_async_transport(emulator: Emulator) -> None:
    async with AsyncElevenLabsClient(KEY, transport=emulator.transport()) as client:
        resolver = AsyncCallSidResolver(client)
        results = await asyncio.gather(*(resolver.resolve(LIVE_SID) for _ in range(50)))
    assert {r.conversation_id for r in results} == {"conv_fake0inbound0live00000000001"}
    assert emulator.total_requests == 2


async def test_signed_url_opens_the_agent_socket_and_pings_expect_pongs(
    server: EmulatorServer,
) -> None:
    server.emulator.ping_interval = 0.02
    async with AsyncElevenLabsClient(KEY, base_url=server.base_url) as client:
        url = (await client.get_signed_url("agent_x")).signed_url
    async with websockets.connect(url) as ws:
        await ws.send(
            json.dumps(
                {"type": "conversation_initiation_client_data", "dynamic_variables": {"a": 1}}
            )
        )
        meta = json.loads(await ws.recv())
        conversation_id = meta["conversation_initiation_metadata_event"]["conversation_id"]
        pongs = 0
        while pongs < 5:
            event = json.loads(await ws.recv())
            if event["type"] == "ping":
                await ws.send(
                    json.dumps({"type": "pong", "event_id": event["ping_event"]["event_id"]})
                )
                pongs += 1
        await ws.send(json.dumps({"type": "user_message", "text": "hi"}))
        while (event := json.loads(await ws.recv()))["type"] != "agent_response":
            pass
    session = server.emulator.sessions[conversation_id]
    assert session.missed_pongs == []
    assert [e["type"] for e in session.events if e["type"] != "pong"] == [
        "conversation_initiation_client_data",
        "user_message",
    ]


async def test_tampered_or_expired_signed_urls_are_refused(server: EmulatorServer) -> None:
    emulator = server.emulator
    token = emulator.sign("agent_x")
    good = f"{server.ws_url}/v1/convai/conversation?agent_id=agent_x&conversation_signature={token}"
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(good[:-3] + "000"):
            pass
    emulator.clock = lambda: 10**10
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(good):
            pass


@pytest.mark.parametrize("refusal", ["plan", "scope", "monitoring_disabled", "conversation_over"])
async def test_monitor_refusals_close_with_a_reason(server: EmulatorServer, refusal: str) -> None:
    server.emulator.monitor_refusal = refusal
    url = f"{server.ws_url}/v1/convai/conversations/conv_fake0inbound0live00000000001/monitor"
    async with websockets.connect(url, additional_headers={"xi-api-key": KEY}) as ws:
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1008
    assert info.value.rcvd.reason.startswith(refusal)


async def test_monitor_records_commands(server: EmulatorServer) -> None:
    url = f"{server.ws_url}/v1/convai/conversations/conv_fake0inbound0live00000000001/monitor"
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(url):
            pass
    async with websockets.connect(url, additional_headers={"xi-api-key": KEY}) as ws:
        command = {"command_type": "contextual_update", "parameters": {"contextual_update": "VIP"}}
        await ws.send(json.dumps(command))
        await ws.send(json.dumps({"command_type": "end_call"}))
        async for _ in ws:  # past the replayed recent events, to the close
            pass
    assert server.emulator.monitor_commands["conv_fake0inbound0live00000000001"][0] == command
    assert server.emulator.conversation("conv_fake0inbound0live00000000001")["status"] == "done"  # type: ignore[index]


def load_json(name: str) -> Any:
    from .conftest import recording

    return recording(name)


@pytest.mark.parametrize("mode", ["reject", "ignore"])
def test_resolver_scans_a_generated_history_when_the_filter_fails(mode: str) -> None:
    history = synthetic_conversations(1000, seed=11)
    emulator = Emulator(history)
    emulator.filter_mode = mode  # type: ignore[assignment]
    newest_first = sorted(history, key=lambda c: -c["metadata"]["start_time_unix_secs"])
    phone = [c for c in newest_first if c["metadata"].get("phone_call")]
    target = phone[249]
    with ElevenLabsClient(KEY, transport=emulator.transport()) as client:
        resolver = CallSidResolver(client, concurrency=1)
        r = resolver.resolve(target["metadata"]["phone_call"]["call_sid"])
        assert (r.conversation_id, r.source) == (target["conversation_id"], "scan")
        # Exact at concurrency 1: one read per phone call down to the target, web chats skipped,
        # and SIP trunk calls too (read last, for a Twilio SID, had it not been found).
        twilio = [c for c in phone if c["metadata"]["conversation_initiation_source"] == "twilio"]
        pages = newest_first.index(target) // 100 + 1
        assert emulator.count("list") == 1 + 1 + pages  # filter, live, scan pages
        assert emulator.count("get") == twilio.index(target) + 1
        assert r.requests == emulator.total_requests
        emulator.reset_counts()
        assert resolver.resolve(twilio[100]["metadata"]["phone_call"]["call_sid"]).requests == 0


def test_a_remote_emulator_is_steered_through_its_control_endpoints() -> None:
    from callsid_resolver.testing import EmulatorProcess

    with EmulatorProcess(recording="default") as process:
        remote = process.remote
        remote.filter_mode = "reject"
        with ElevenLabsClient(KEY, base_url=process.base_url) as client:
            assert client.list_conversations().conversations
            r = CallSidResolver(client).resolve(LIVE_SID)
        assert r.source == "live"
        assert remote.count("list") == 3  # one listing, then the rejected filter and live calls
        assert remote.total_requests == 4
        remote.reset_counts()
        assert remote.total_requests == 0


def test_the_served_emulator_answers_keep_alive_requests_without_nagle() -> None:
    # A reply written in two parts waited ~40 ms for the client's delayed ACK when Nagle's
    # algorithm was on: asyncio turns it off only for sockets whose protocol says TCP.
    async def accepted_nodelay() -> int:
        listener = bind("127.0.0.1", 0)
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
            value = await asyncio.wait_for(seen, 5)
            writer.close()
        return value

    assert asyncio.run(accepted_nodelay()) != 0
