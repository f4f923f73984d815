"""The mailbox contract, run against `MemoryMailbox` and `RedisMailbox` (the real Redis)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio

from callsid_resolver import InvalidCallSid
from callsid_resolver.live import Mailbox, MailboxFull, MemoryMailbox, RedisMailbox

from .conftest import REDIS_URL

SID = "CA" + "a" * 32
OTHER = "CA" + "b" * 32


@pytest.fixture(params=["memory", "redis"])
async def mailbox(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[Mailbox]:
    if request.param == "memory":
        yield MemoryMailbox(max_items=5, ttl=60)
        return
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    yield RedisMailbox(client, key_prefix=key_prefix, max_items=5, ttl=60)
    await client.aclose()


async def test_post_then_drain_in_order(mailbox: Mailbox) -> None:
    assert isinstance(mailbox, Mailbox)
    assert await mailbox.post(SID, {"type": "contextual_update", "text": "a"}) == 1
    assert await mailbox.post(SID, "b") == 2
    assert await mailbox.post(OTHER, [1, 2]) == 1
    assert await mailbox.size(SID) == 2
    assert await mailbox.drain(SID) == [{"type": "contextual_update", "text": "a"}, "b"]
    assert await mailbox.drain(SID) == []
    assert await mailbox.drain(OTHER) == [[1, 2]]


async def test_a_full_mailbox_refuses_and_drops_nothing(mailbox: Mailbox) -> None:
    for i in range(5):
        await mailbox.post(SID, i)
    with pytest.raises(MailboxFull) as info:
        await mailbox.post(SID, 5)
    assert info.value.max_items == 5
    assert await mailbox.drain(SID) == [0, 1, 2, 3, 4]
    assert await mailbox.post(SID, 5) == 1


async def test_concurrent_drains_never_share_an_item(mailbox: Mailbox) -> None:
    posted: list[Any] = []
    drained: list[Any] = []

    async def poster(n: int) -> None:
        for i in range(20):
            while True:
                try:
                    await mailbox.post(SID, f"{n}-{i}")
                    posted.append(f"{n}-{i}")
                    break
                except MailboxFull:
                    await asyncio.sleep(0.001)

    async def drainer() -> None:
        while len(posted) < 40:
            drained.extend(await mailbox.drain(SID))
            await asyncio.sleep(0.0005)

    await asyncio.gather(poster(1), poster(2), drainer(), drainer())
    drained.extend(await mailbox.drain(SID))
    assert sorted(drained) == sorted(posted)
    assert len(drained) == 40


async def test_bad_input_fails_before_storing(mailbox: Mailbox) -> None:
    with pytest.raises(InvalidCallSid):
        await mailbox.post("not a sid", "x")
    with pytest.raises(TypeError):
        await mailbox.post(SID, object())
    assert await mailbox.size(SID) == 0


async def test_memory_ttl_on_an_injected_clock() -> None:
    now = [100.0]
    box = MemoryMailbox(max_items=3, ttl=10, clock=lambda: now[0])
    await box.post(SID, "old")
    now[0] += 9
    await box.post(OTHER, "newer")
    await box.post(SID, "renewed")  # a post renews the call's TTL
    now[0] += 9
    assert await box.drain(SID) == ["old", "renewed"]
    await box.post(SID, "x")
    now[0] += 10.1
    assert await box.drain(SID) == []
    assert await box.drain(OTHER) == []


def test_memory_mailbox_is_thread_safe() -> None:
    box = MemoryMailbox(max_items=10_000)

    def post_many(n: int) -> None:
        for i in range(500):
            asyncio.run(box.post(SID, f"{n}-{i}"))

    threads = [threading.Thread(target=post_many, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    items = asyncio.run(box.drain(SID))
    assert len(items) == 2000
    assert len(set(items)) == 2000


async def test_redis_mailbox_across_two_connections(key_prefix: str) -> None:
    poster_client = redis.asyncio.Redis.from_url(REDIS_URL)
    drainer_client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        poster = RedisMailbox(poster_client, key_prefix=key_prefix, ttl=30)
        drainer = RedisMailbox(drainer_client, key_prefix=key_prefix, ttl=30)
        await poster.post(SID, {"type": "contextual_update", "text": "from process A"})
        await poster.post(SID, {"type": "user_message", "text": "and again"})
        ttl_ms = await drainer_client.pttl(drainer.key(SID))
        assert 0 < ttl_ms <= 30_000
        assert await drainer.drain(SID) == [
            {"type": "contextual_update", "text": "from process A"},
            {"type": "user_message", "text": "and again"},
        ]
        assert await poster_client.exists(poster.key(SID)) == 0
    finally:
        await poster_client.aclose()
        await drainer_client.aclose()
