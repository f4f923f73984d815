"""The mailbox contract, run against `MemoryMailbox` and `RedisMailbox` (the real Redis)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis.asyncio

from callsid_resolver import InvalidCallSid, MailboxFull, async_redis_client
from callsid_resolver.live import Mailbox, MemoryMailbox, RedisMailbox, RunMailbox, Sender

from .conftest import REDIS_URL

SID = "CA" + "a" * 32
OTHER = "CA" + "b" * 32


@pytest.fixture(params=["memory", "redis"])
async def mailbox(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[Mailbox]:
    if request.param == "memory":
        yield MemoryMailbox(max_items=5, ttl=60)
        return
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    yield RedisMailbox(client, namespace=key_prefix, max_items=5, ttl=60)
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
        poster = RedisMailbox(poster_client, namespace=key_prefix, ttl=30)
        drainer = RedisMailbox(drainer_client, namespace=key_prefix, ttl=30)
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


async def test_post_many_queues_what_fits_in_order_and_the_rest_is_refused(
    mailbox: Mailbox,
) -> None:
    assert isinstance(mailbox, RunMailbox)
    assert await mailbox.post(SID, "a") == 1
    assert await mailbox.post_many(SID, []) == 0
    assert await mailbox.post_many(SID, ["b", "c", "d", "e", "f", "g"]) == 4  # room for 4 of 6
    assert await mailbox.post_many(SID, ["h"]) == 0
    with pytest.raises(MailboxFull):
        await mailbox.post(SID, "i")
    assert await mailbox.drain(SID) == ["a", "b", "c", "d", "e"]


class CountingMailbox(RedisMailbox):
    def __init__(self, client: redis.asyncio.Redis, key_prefix: str) -> None:
        super().__init__(client, namespace=key_prefix, max_items=10_000)
        self.calls: list[int] = []

    async def post_many(self, call_sid: str, items: Sequence[Any]) -> int:
        self.calls.append(len(items))
        return await super().post_many(call_sid, items)


async def test_a_burst_of_5000_posts_on_the_library_client_loses_nothing(key_prefix: str) -> None:
    """A small blocking pool makes a burst wait for connections instead of failing (redis-py's
    default pool raised `MaxConnectionsError` for most of such a burst), and the `Sender`
    queues each lane's run in one script: far fewer round trips than messages, in order."""
    client = async_redis_client(REDIS_URL, max_connections=4)
    assert client.connection_pool.connection_kwargs["retry"].get_retries() == 0
    mailbox = CountingMailbox(client, key_prefix)
    sender = Sender(mailbox=mailbox, queue_size=5_000)
    sids = [f"CA{i:032x}" for i in range(1, 11)]
    try:
        receipts = await asyncio.gather(
            *(sender.send_contextual_update(f"m{i}", call_sid=sids[i % 10]) for i in range(5_000))
        )
        assert {r.channel for r in receipts} == {"mailbox"}
        assert sum(mailbox.calls) == 5_000
        assert len(mailbox.calls) <= 5_000 // 100  # runs, not one round trip per message
        for lane, sid in enumerate(sids):
            texts = [item["text"] for item in await mailbox.drain(sid)]
            assert texts == [f"m{i}" for i in range(lane, 5_000, 10)]
        raw = await asyncio.gather(*(client.rpush(f"{key_prefix}:raw", i) for i in range(5_000)))
        assert sorted(raw) == list(range(1, 5_001))  # direct commands wait for a connection too
    finally:
        await sender.aclose()
        await client.aclose()
