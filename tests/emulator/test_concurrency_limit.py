"""The emulator's `concurrency_limit`: a workspace's cap on requests in flight, answered with
429 `concurrent_limit_exceeded` (docs/protocol.md §10, §12)."""

from __future__ import annotations

import asyncio
from contextlib import closing
from typing import Any

import httpx
import pytest

from callsid_resolver.testing import Emulator, EmulatorServer, RemoteEmulator

from .conftest import API, DONE_ID, KEY, LIST


async def burst(emulator: Emulator, n: int, base_url: str = API, served: bool = False) -> Any:
    """`n` GETs sent at once; their responses, in order."""
    transport = None if served else emulator.transport()
    async with httpx.AsyncClient(
        transport=transport, base_url=base_url, headers={"xi-api-key": KEY}
    ) as http:
        return await asyncio.gather(*(http.get(f"{LIST}/{DONE_ID}") for _ in range(n)))


def test_requests_past_the_limit_get_a_typed_concurrency_429() -> None:
    emulator = Emulator(recording="default", profile="observed")
    emulator.latency = 0.05  # all five arrive before the first is answered
    emulator.concurrency_limit = 2
    replies = asyncio.run(burst(emulator, 5))
    assert sorted(r.status_code for r in replies) == [200, 200, 429, 429, 429]
    refused = next(r for r in replies if r.status_code == 429)
    detail = refused.json()["detail"]
    assert (detail["type"], detail["code"]) == ("rate_limit_error", "concurrent_limit_exceeded")
    assert detail["request_id"] == refused.headers["x-trace-id"]
    assert "retry-after" not in refused.headers  # the docs advise backoff and name no header
    assert (emulator.peak_serving, emulator.serving) == (2, 0)
    assert [r.status for r in emulator.requests].count(429) == 3
    # The slots come back once answered: a later burst within the limit is served whole.
    assert [r.status_code for r in asyncio.run(burst(emulator, 2))] == [200, 200]


def test_the_legacy_body_carries_the_code_as_its_status() -> None:
    emulator = Emulator(recording="default")
    emulator.latency = 0.05
    emulator.concurrency_limit = 1
    replies = asyncio.run(burst(emulator, 2))
    refused = next(r for r in replies if r.status_code == 429)
    assert refused.json()["detail"]["status"] == "concurrent_limit_exceeded"


def test_no_limit_by_default_and_control_requests_never_count() -> None:
    emulator = Emulator(recording="default")
    emulator.latency = 0.02
    assert emulator.concurrency_limit is None
    assert all(r.status_code == 200 for r in asyncio.run(burst(emulator, 20)))
    assert emulator.peak_serving == 20
    emulator.concurrency_limit = 1
    http = httpx.Client(transport=emulator.transport(), base_url=API)
    with http, emulator.admission(LIST) as admitted:  # one API request in flight: the limit
        assert admitted
        assert http.get("/_emulator/counts").status_code == 200
        assert http.get(LIST, headers={"xi-api-key": KEY}).status_code == 429


def test_the_limit_is_set_and_checked_through_the_settings_endpoint() -> None:
    emulator = Emulator(recording="default", profile="observed")
    with EmulatorServer(emulator) as server, closing(RemoteEmulator(server.base_url)) as remote:
        for wrong in (0, -1, 2.5, "3", True):
            with pytest.raises(ValueError, match="concurrency_limit"):
                remote.configure(concurrency_limit=wrong)
        assert emulator.concurrency_limit is None  # nothing set by a refused value
        assert remote.configure(concurrency_limit=2, latency=0.05)["concurrency_limit"] == 2
        remote.concurrency_limit = 2  # the attribute form sets the served knob too
        replies = asyncio.run(burst(emulator, 4, server.base_url, served=True))
        assert sorted(r.status_code for r in replies) == [200, 200, 429, 429]
        counts = httpx.get(f"{server.base_url}/_emulator/counts").json()
        assert (counts["statuses"], counts["peak_in_flight"]) == ({"200": 2, "429": 2}, 2)
        assert remote.configure(concurrency_limit=None)["concurrency_limit"] is None
