"""The hand-written pairs of `_concurrency`: an attempt that finds no request slot before the
deadline fails as a counted `PoolTimeout`, one cut short while sent as a `ReadTimeout`, in
both flavours; and the blocking client has one backend."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from callsid_resolver import ElevenLabsClient, RetryPolicy
from callsid_resolver._concurrency import AsyncInFlight, InFlight, pool_transport

SHORT = RetryPolicy(deadline=0.05)


async def test_async_no_slot_before_the_deadline_is_a_counted_pool_timeout() -> None:
    bound = AsyncInFlight(1, clock=time.monotonic)
    state = SHORT.start(time.monotonic())
    assert bound.slots is not None
    async with bound.slots:
        with pytest.raises(httpx.PoolTimeout, match="no request slot of 1"):
            await bound.run(state, lambda: asyncio.sleep(0, "never"))
    assert state.attempts == 1


async def test_async_attempt_cut_at_the_deadline_is_a_read_timeout() -> None:
    bound = AsyncInFlight(None, clock=time.monotonic)
    state = SHORT.start(time.monotonic())

    async def stalled() -> str:
        state.attempt_timeout(httpx.Timeout(10), time.monotonic())  # sent, so counted
        await asyncio.sleep(10)
        return "late"

    with pytest.raises(httpx.ReadTimeout, match="total deadline"):
        await bound.run(state, stalled)
    assert state.attempts == 1


def test_sync_no_slot_before_the_deadline_is_a_counted_pool_timeout() -> None:
    bound = InFlight(1, clock=time.monotonic)
    state = SHORT.start(time.monotonic())
    assert bound.slots is not None
    with bound.slots, pytest.raises(httpx.PoolTimeout, match="no request slot of 1"):
        bound.run(state, lambda: "never")
    assert state.attempts == 1
    assert bound.run(state, lambda: "sent") == "sent"  # the slot is free again


def test_the_blocking_client_sends_through_httpx_only(no_proxy_env: pytest.MonkeyPatch) -> None:
    limits = httpx.Limits(max_connections=5)
    own = pool_transport("httpx", limits, own_pool=True)
    assert isinstance(own, httpx.HTTPTransport)
    own.close()
    assert pool_transport("httpx", limits, own_pool=False) is None
    no_proxy_env.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert pool_transport("httpx", limits, own_pool=True) is None  # httpx routes to the proxy
    with pytest.raises(ValueError, match="'httpx' only"):
        ElevenLabsClient("sk_any", backend="aiohttp")  # type: ignore[arg-type]
