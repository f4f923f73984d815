"""Cache, single flight, mailbox and router against a real 3-master Redis Cluster (issue #16,
item 6). Every multi-key script must touch one slot (else the cluster refuses it: CROSSSLOT),
keys must spread over the masters, and the router's "is the owner still listening" must count
the subscribers of the node that holds the owner's shard channel, not of whichever node ran it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio.cluster
import redis.cluster
from redis.crc import key_slot

from callsid_resolver import (
    AsyncCallSidResolver,
    AsyncElevenLabsClient,
    AsyncRedisCache,
    CachedMapping,
    NotLive,
    RedisCache,
)
from callsid_resolver._core._keys import Keys
from callsid_resolver._redis_support import is_cluster
from callsid_resolver.live import (
    ConversationSession,
    MemoryMailbox,
    RedisMailbox,
    RedisRouter,
    Sender,
    SessionRegistry,
)
from callsid_resolver.testing import Emulator, EmulatorServer

from ..conftest import API_KEY, FakeApi, make_conversation, sid_of

AGENT = "agent_fake0example0agent0000000001"
SID = "CA" + "c105" * 8


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def _node_port(client: redis.cluster.RedisCluster, key: str) -> int:
    return int(client.get_node_from_key(key).port)


def test_each_family_keeps_a_call_in_one_slot_and_spreads_calls_over_the_masters(
    cluster_client: redis.cluster.RedisCluster, prefix: str
) -> None:
    keys = Keys(prefix)
    mailbox = RedisMailbox(redis.asyncio.Redis(), namespace=prefix)  # only its key format
    for i in range(20):
        sid = sid_of(i)
        assert key_slot(keys.sid(sid).encode()) == key_slot(keys.lock(sid).encode())
        box = mailbox.key(sid)
        assert key_slot(box.encode()) == key_slot(f"{box}:corrupt".encode())
    ports = {_node_port(cluster_client, keys.sid(sid_of(i))) for i in range(20)}
    assert len(ports) == 3  # by SID, not by namespace: the whole cluster carries the cache


def test_the_sync_cache_and_its_lock_on_a_cluster(
    cluster_client: redis.cluster.RedisCluster, prefix: str
) -> None:
    keys = Keys(prefix)
    cache = RedisCache(cluster_client, ttl=60)
    entries = {
        keys.sid(sid_of(i)): CachedMapping(call_sid=sid_of(i), conversation_id=f"conv_{i}")
        for i in range(12)
    }
    cache.set_many(entries)
    wanted = [*entries, keys.sid("CA" + "f" * 32)]
    found = cache.get_many(wanted)  # one MGET would be refused across slots
    assert [v.conversation_id if v else None for v in found] == [
        *(f"conv_{i}" for i in range(12)),
        None,
    ]
    token = cache.claim(keys.lock(sid_of(1)), 10)
    assert token is not None
    assert cache.claim(keys.lock(sid_of(1)), 10) is None
    cache.release(keys.lock(sid_of(1)), "not-the-token")
    assert cache.claim(keys.lock(sid_of(1)), 10) is None
    cache.release(keys.lock(sid_of(1)), token)
    assert cache.claim(keys.lock(sid_of(1)), 10) is not None


async def test_resolvers_on_a_cluster_share_one_lookup(
    async_cluster_client: redis.asyncio.cluster.RedisCluster, prefix: str, api: FakeApi
) -> None:
    api.add(*(make_conversation(i) for i in range(30)))
    clients = [AsyncElevenLabsClient(API_KEY, transport=httpx.MockTransport(api)) for _ in range(4)]
    resolvers = [
        AsyncCallSidResolver(c, cache=AsyncRedisCache(async_cluster_client), namespace=prefix)
        for c in clients
    ]
    results = await asyncio.gather(*(r.resolve(sid_of(9)) for r in resolvers for _ in range(8)))
    for c in clients:
        await c.aclose()
    assert {r.conversation_id for r in results} == {f"conv_test{9:023d}"}
    assert api.counts == {"list": 1, "get": 1}  # one upstream lookup for 32 resolutions
    keys = Keys(prefix)
    assert await async_cluster_client.exists(keys.sid(sid_of(9)))
    assert await async_cluster_client.exists(keys.lock(sid_of(9))) == 0  # released


async def test_the_mailbox_on_a_cluster_posts_runs_and_sets_corrupt_items_aside(
    async_cluster_client: redis.asyncio.cluster.RedisCluster, prefix: str
) -> None:
    mailbox = RedisMailbox(async_cluster_client, namespace=prefix, max_items=5)
    assert await mailbox.post(SID, {"n": 0}) == 1
    await async_cluster_client.rpush(mailbox.key(SID), b"\xff not json")
    assert await mailbox.post_many(SID, [{"n": i} for i in range(1, 6)]) == 3  # room for 3
    assert await mailbox.drain(SID) == [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}]
    assert await async_cluster_client.lrange(f"{mailbox.key(SID)}:corrupt", 0, -1) == [
        b"\xff not json"
    ]
    sender = Sender(mailbox=mailbox)
    receipts = await asyncio.gather(
        *(sender.send_contextual_update(f"m{i}", call_sid=sid_of(i % 3)) for i in range(9))
    )
    assert {r.channel for r in receipts} == {"mailbox"}
    for lane in range(3):
        drained = await mailbox.drain(sid_of(lane))
        assert [d["text"] for d in drained] == [f"m{i}" for i in range(lane, 9, 3)]
    await sender.aclose()


@pytest.fixture
async def api_client() -> AsyncIterator[AsyncElevenLabsClient]:
    emulator = Emulator(recording="default")
    emulator.ping_interval = 0.05
    with EmulatorServer(emulator) as server:
        async with AsyncElevenLabsClient("test-key", base_url=server.base_url) as client:
            yield client


async def test_the_router_delivers_runs_and_notices_a_gone_owner_on_a_cluster(
    async_cluster_client: redis.asyncio.cluster.RedisCluster,
    cluster_client: redis.cluster.RedisCluster,
    api_client: AsyncElevenLabsClient,
    prefix: str,
) -> None:
    assert is_cluster(async_cluster_client)
    registry = SessionRegistry()
    async with (
        RedisRouter(async_cluster_client, namespace=prefix, worker_id="worker-a") as worker_a,
        RedisRouter(async_cluster_client, registry, namespace=prefix, worker_id="worker-b"),
        ConversationSession(AGENT, client=api_client) as session,
    ):
        # The call's ownership key and worker-b's shard channel live on different masters, so
        # a subscriber count taken on the wrong node would read 0 and call worker-b dead.
        sid = next(
            sid_of(i)
            for i in range(100)
            if _node_port(cluster_client, f"{prefix}:route:sid:{{{sid_of(i)}}}")
            != _node_port(cluster_client, f"{prefix}:route:worker:worker-b")
        )
        await registry.register(session, call_sid=sid)
        mailbox = MemoryMailbox()
        sender = Sender(router=worker_a, mailbox=mailbox)
        receipts = await asyncio.gather(
            *(sender.send_contextual_update(f"m{i}", call_sid=sid) for i in range(50))
        )
        assert {(r.channel, r.worker) for r in receipts} == {("session", "worker-b")}
        assert all(r.confirmed for r in receipts)

        # A ghost owner (nobody subscribed to its channel): noticed, its key deleted.
        ghost = f"{prefix}:route:sid:{{{SID}}}"
        await async_cluster_client.set(ghost, "ghost conv_x", px=5000)
        with pytest.raises(NotLive) as info:
            await sender.send_contextual_update("x", call_sid=SID, channel="session")
        assert info.value.reasons["session"].endswith("worker ghost held the session but is gone")
        assert await async_cluster_client.get(ghost) is None
        await sender.aclose()
