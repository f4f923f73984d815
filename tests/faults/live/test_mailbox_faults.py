"""`RedisMailbox` against a corrupt list and a Redis that dies (issue #15, items 8 and 13)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from callsid_resolver import CallSidResolverError, MailboxUnavailable, NotLive
from callsid_resolver.live import RedisMailbox, Sender

from ...live.conftest import REDIS_URL
from ...redis_server import RedisServer

SID = "CA" + "c0de" * 8


@pytest.fixture
async def redis_client() -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def test_a_corrupt_item_never_costs_the_good_items_beside_it(
    redis_client: redis.asyncio.Redis, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    mailbox = RedisMailbox(redis_client, namespace=key_prefix)
    key = mailbox.key(SID)
    await mailbox.post(SID, {"n": 1})
    await redis_client.rpush(key, b"\xff\xfe not utf-8", b"{not json", b"[" * 10_000)
    await mailbox.post(SID, {"n": 2})
    await mailbox.post(SID, "three")
    assert await mailbox.drain(SID) == [{"n": 1}, {"n": 2}, "three"]
    assert await mailbox.size(SID) == 0
    # Set aside, not lost: the bad items are kept for inspection, with the mailbox's TTL.
    aside = await redis_client.lrange(f"{key}:corrupt", 0, -1)
    assert aside == [b"\xff\xfe not utf-8", b"{not json", b"[" * 10_000]
    assert 0 < await redis_client.pttl(f"{key}:corrupt") <= 3_600_000
    assert "set 3 undecodable item(s) aside" in caplog.text


async def test_a_drain_removes_only_what_it_returns_while_posts_and_drains_race(
    redis_client: redis.asyncio.Redis, key_prefix: str
) -> None:
    mailbox = RedisMailbox(redis_client, namespace=key_prefix, max_items=10_000)
    posted = [f"item-{i}" for i in range(400)]
    drained: list[str] = []
    done = asyncio.Event()

    async def poster() -> None:
        for i, item in enumerate(posted):
            await mailbox.post(SID, item)
            if i % 50 == 0:  # corrupt items from someone else, mixed in
                await redis_client.rpush(mailbox.key(SID), b"\x80")
        done.set()

    async def drainer() -> None:
        while not done.is_set():
            drained.extend(await mailbox.drain(SID))
            await asyncio.sleep(0)

    await asyncio.gather(poster(), drainer(), drainer(), drainer())
    drained.extend(await mailbox.drain(SID))
    assert sorted(drained) == sorted(posted)  # each exactly once, none lost
    assert await redis_client.llen(f"{mailbox.key(SID)}:corrupt") == 8


@given(items=st.lists(st.binary(max_size=30) | st.text(max_size=30).map(str.encode), max_size=8))
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_stored_bytes_drain_as_decoded_items_or_set_aside(
    key_prefix: str, items: list[bytes]
) -> None:
    async def run() -> None:
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        mailbox = RedisMailbox(client, namespace=key_prefix)
        key = mailbox.key(SID)
        await client.delete(key, f"{key}:corrupt")
        if items:
            await client.rpush(key, *items)
        good = []
        for raw in items:
            with contextlib.suppress(ValueError):
                good.append(json.loads(raw))
        assert await mailbox.drain(SID) == good
        assert await client.llen(f"{key}:corrupt") == len(items) - len(good)
        assert await client.llen(key) == 0
        await client.aclose()

    asyncio.run(run())


async def test_redis_errors_become_mailbox_unavailable_and_the_sender_says_not_live(
    redis_server: RedisServer,
) -> None:
    client = redis.asyncio.Redis.from_url(
        redis_server.url, socket_timeout=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    mailbox = RedisMailbox(client)
    await mailbox.post(SID, "before")
    await asyncio.to_thread(redis_server.kill)
    for operation in (mailbox.post(SID, "x"), mailbox.drain(SID), mailbox.size(SID)):
        with pytest.raises(MailboxUnavailable) as info:
            await operation
        assert info.value.__cause__ is None  # scrubbed: no Redis error (address) chained
        assert str(redis_server.port) not in str(info.value)
    with pytest.raises(NotLive) as not_live:
        await Sender(mailbox=mailbox).send_contextual_update("x", call_sid=SID)
    assert isinstance(not_live.value.errors["mailbox"], MailboxUnavailable)
    # Out of memory: a Redis that refuses writes is unavailable too, not a raw ResponseError.
    await asyncio.to_thread(redis_server.start)
    await client.config_set("maxmemory", "1")
    await client.config_set("maxmemory-policy", "noeviction")
    with pytest.raises(MailboxUnavailable, match="OutOfMemoryError"):
        await mailbox.post(SID, "x" * 10_000)
    await client.aclose()
    assert issubclass(MailboxUnavailable, CallSidResolverError)
