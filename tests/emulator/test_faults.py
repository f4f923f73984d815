"""Fault knobs, latency and the request counter/log, in-process (sync and async) and served."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from callsid_resolver.testing import Emulator, EmulatorServer

from .conftest import LIST, LIVE_ID


def test_injected_429_carries_retry_after(emu: Emulator, http: httpx.Client) -> None:
    emu.inject(status=429, retry_after=2)
    limited = http.get(LIST)
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "2")
    assert limited.json()["detail"]["status"] == "too_many_concurrent_requests"
    assert http.get(LIST).status_code == 200  # one time only
    emu.inject(status=429)
    assert "retry-after" not in http.get(LIST).headers


def test_injected_5xx_repeat_and_can_target_one_endpoint(emu: Emulator, http: httpx.Client) -> None:
    emu.inject(status=503, times=2, endpoint="get")
    assert http.get(LIST).status_code == 200  # not a GET of one conversation
    assert [http.get(f"{LIST}/{LIVE_ID}").status_code for _ in range(3)] == [503, 503, 200]
    emu.inject(status=500, body={"detail": "boom"})
    failed = http.get(LIST)
    assert (failed.status_code, failed.json()) == (500, {"detail": "boom"})


def test_faults_apply_in_order_and_can_be_cleared(emu: Emulator, http: httpx.Client) -> None:
    emu.inject(502)
    emu.inject(504)
    assert [http.get(LIST).status_code for _ in range(3)] == [502, 504, 200]
    emu.inject(502, times=5)
    emu.clear_faults()
    assert http.get(LIST).status_code == 200
    with pytest.raises(ValueError, match="status"):
        emu.inject()


def test_malformed_is_a_200_that_is_not_json(emu: Emulator, http: httpx.Client) -> None:
    emu.inject(malformed=True)
    response = http.get(LIST)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_drop_in_process_sync_and_async(emu: Emulator, http: httpx.Client) -> None:
    emu.inject(drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        http.get(LIST)
    assert http.get(LIST).status_code == 200
    assert emu.requests[0].status is None  # the dropped one, still logged and counted
    assert emu.count("list") == 2


async def test_drop_async(emu: Emulator, ahttp: httpx.AsyncClient) -> None:
    emu.inject(drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        await ahttp.get(LIST)
    assert (await ahttp.get(LIST)).status_code == 200


def test_drop_on_the_real_server_closes_the_connection(
    emu: Emulator, server: EmulatorServer, served: httpx.Client
) -> None:
    emu.inject(drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        served.get(LIST)
    assert served.get(LIST).status_code == 200


async def test_drop_through_asgi_transport_is_an_httpx_transport_error(emu: Emulator) -> None:
    emu.inject(drop=True)
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://e") as client:
        with pytest.raises(httpx.TransportError):
            await client.get(LIST, headers={"xi-api-key": "k"})


def test_rate_limit_every_nth_request(emu: Emulator, http: httpx.Client) -> None:
    emu.rate_limit_every = 3
    emu.retry_after = "5"
    statuses = [http.get(LIST) for _ in range(6)]
    assert [r.status_code for r in statuses] == [200, 200, 429, 200, 200, 429]
    assert statuses[2].headers["retry-after"] == "5"
    emu.rate_limit_every = None
    assert http.get(LIST).status_code == 200


def test_fail_every_nth_request(emu: Emulator, http: httpx.Client) -> None:
    emu.fail_every = 2
    emu.fail_status = 502
    assert [http.get(LIST).status_code for _ in range(4)] == [200, 502, 200, 502]


def test_latency_sleeps_in_the_sync_path(emu: Emulator, http: httpx.Client) -> None:
    emu.latency = 0.05
    started = time.perf_counter()
    http.get(LIST)
    assert time.perf_counter() - started >= 0.05


async def test_latency_sleeps_without_blocking_the_loop(
    emu: Emulator, ahttp: httpx.AsyncClient
) -> None:
    emu.latency = 0.2
    started = time.perf_counter()
    responses = await asyncio.gather(*(ahttp.get(LIST) for _ in range(10)))
    elapsed = time.perf_counter() - started
    assert all(r.status_code == 200 for r in responses)
    # Ten requests overlap: far less than the 2 s ten blocking sleeps would take.
    assert 0.2 <= elapsed < 1.5


def test_latency_on_the_served_emulator(emu: Emulator, served: httpx.Client) -> None:
    emu.latency = 0.05
    started = time.perf_counter()
    served.get(LIST)
    assert time.perf_counter() - started >= 0.05


def test_every_request_is_counted_and_logged(emu: Emulator, http: httpx.Client) -> None:
    emu.inject(503, endpoint="list")
    http.get(LIST, params={"page_size": 2, "phone_number_ids": ["a", "b"]})
    http.get(LIST)
    http.get(f"{LIST}/{LIVE_ID}")
    http.get(f"{LIST}/{LIVE_ID}", headers={"xi-api-key": ""})  # 401s count too
    http.get("/v1/convai/conversation/get-signed-url?agent_id=a")
    http.post("/v1/convai/twilio/outbound-call", json={})
    http.get("/nowhere")
    assert [emu.count(e) for e in ("list", "get", "signed_url", "outbound_call", "other")] == [
        2,
        2,
        1,
        1,
        1,
    ]
    assert emu.total_requests == len(emu.requests) == 7
    first = emu.requests[0]
    assert (first.method, first.path, first.endpoint, first.status) == ("GET", LIST, "list", 503)
    assert first.param("page_size") == "2"
    assert first.param_list("phone_number_ids") == ["a", "b"]
    assert [r.status for r in emu.requests.of("get")] == [200, 401]
    assert emu.counts == {"list": 2, "get": 2, "signed_url": 1, "outbound_call": 1, "other": 1}
    emu.reset_counts()
    assert (emu.total_requests, len(emu.requests), emu.count("list")) == (0, 0, 0)


def test_requests_are_counted_on_the_served_emulator(emu: Emulator, served: httpx.Client) -> None:
    emu.inject(429, retry_after=1)
    assert served.get(LIST).status_code == 429
    assert served.get(LIST).status_code == 200
    assert emu.count("list") == 2
