"""`RedisRouter`: sends on one worker reach the session another worker holds, over real Redis.

The first tests run two routers in one process (each with its own worker id, subscription and
registry: to Redis they are two workers). The last ones run the session's worker as a real OS
process and kill or freeze it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio

from callsid_resolver import AsyncElevenLabsClient, NotLive, RouteTimeout
from callsid_resolver.live import (
    ConversationSession,
    MemoryMailbox,
    RedisRouter,
    Sender,
    SessionRegistry,
)
from callsid_resolver.testing import Emulator, EmulatorServer

from .conftest import AGENT, REDIS_URL, CuttableProxy, eventually

SID = "CA" + "5eed" * 8
OTHER_SID = "CA" + "0dd5" * 8


def updates(emulator: Emulator, conversation_id: str) -> list[str]:
    events = emulator.session_events(conversation_id)
    return [e["text"] for e in events if e.get("type") == "contextual_update"]


@pytest.fixture
async def redis_client() -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def registry_b(
    redis_client: redis.asyncio.Redis, key_prefix: str
) -> AsyncIterator[SessionRegistry]:
    """The session registry of "worker-b", announced by its running router (lease 1 s)."""
    registry = SessionRegistry()
    async with RedisRouter(
        redis_client, registry, namespace=key_prefix, worker_id="worker-b", lease=1.0
    ):
        yield registry


@pytest.fixture
async def worker_a(
    redis_client: redis.asyncio.Redis, key_prefix: str
) -> AsyncIterator[RedisRouter]:
    async with RedisRouter(
        redis_client, namespace=key_prefix, worker_id="worker-a", ack_timeout=2.0
    ) as router:
        yield router


async def test_a_send_on_one_worker_reaches_the_session_another_holds_in_order(
    client: AsyncElevenLabsClient,
    emulator: Emulator,
    worker_a: RedisRouter,
    registry_b: SessionRegistry,
) -> None:
    async with ConversationSession(AGENT, client=client) as session:
        await registry_b.register(session, call_sid=SID)
        sender = Sender(router=worker_a, mailbox=MemoryMailbox())
        receipts = await asyncio.gather(
            *(sender.send_contextual_update(f"m{i}", call_sid=SID) for i in range(300))
        )
        result = await sender.send_tool_result("toolu_7", {"ok": True}, call_sid=SID)
        by_id = await sender.send_user_message("hi", conversation_id=session.conversation_id)
        cid = session.conversation_id or ""
        assert {(r.channel, r.worker, r.conversation_id) for r in receipts} == {
            ("session", "worker-b", cid)
        }
        assert all(r.confirmed for r in receipts)
        assert (result.channel, result.worker) == ("session", "worker-b")
        assert (by_id.channel, by_id.worker) == ("session", "worker-b")

        def kinds() -> list[str]:
            return [e["type"] for e in emulator.session_events(cid) if e["type"] != "pong"]

        # Acknowledged means the server's WebSocket layer had it; the emulator's app records
        # the last frames a moment later.
        await eventually(lambda: kinds()[-1:] == ["user_message"])
        assert updates(emulator, cid) == [f"m{i}" for i in range(300)]
        assert kinds()[-2:] == ["client_tool_result", "user_message"]
        await sender.aclose()


async def test_ownership_is_announced_with_a_lease_and_withdrawn_on_close(
    client: AsyncElevenLabsClient,
    redis_client: redis.asyncio.Redis,
    key_prefix: str,
    worker_a: RedisRouter,
    registry_b: SessionRegistry,
) -> None:
    assert await worker_a.owner(call_sid=SID) is None
    async with ConversationSession(AGENT, client=client) as session:
        await registry_b.register(session, call_sid=SID)
        assert await worker_a.owner(call_sid=SID) == "worker-b"
        assert await worker_a.owner(conversation_id=session.conversation_id) == "worker-b"
        ttl = await redis_client.pttl(f"{key_prefix}:route:sid:{{{SID}}}")
        assert 0 < ttl <= 1000
    await asyncio.sleep(0.05)  # the withdrawal is a task started by the close
    assert await worker_a.owner(call_sid=SID) is None
    sender = Sender(router=worker_a)
    with pytest.raises(NotLive) as info:
        await sender.send_contextual_update("late", call_sid=SID)
    assert "no worker of the fleet holds a session" in info.value.reasons["session"]


async def test_a_router_that_closes_withdraws_the_calls_it_announced(
    client: AsyncElevenLabsClient,
    redis_client: redis.asyncio.Redis,
    key_prefix: str,
    worker_a: RedisRouter,
) -> None:
    registry = SessionRegistry()
    async with (
        ConversationSession(AGENT, client=client) as one,
        ConversationSession(AGENT, client=client) as two,
    ):
        await registry.register(one, call_sid=SID)  # before the router starts: announced by it
        async with RedisRouter(redis_client, registry, namespace=key_prefix, worker_id="w-c"):
            await registry.register(two, call_sid=OTHER_SID)
            assert await worker_a.owner(call_sid=SID) == "w-c"
            assert await worker_a.owner(conversation_id=two.conversation_id) == "w-c"
        # The sessions are still open, but nobody can reach them through Redis any more.
        assert await worker_a.owner(call_sid=SID) is None
        assert await worker_a.owner(call_sid=OTHER_SID) is None
        assert await worker_a.owner(conversation_id=two.conversation_id) is None
        assert await redis_client.keys(f"{key_prefix}:route:*") == []


async def test_the_heartbeat_renews_the_lease_and_restores_a_lost_key(
    client: AsyncElevenLabsClient,
    redis_client: redis.asyncio.Redis,
    key_prefix: str,
    registry_b: SessionRegistry,
) -> None:
    key = f"{key_prefix}:route:sid:{{{SID}}}"
    async with ConversationSession(AGENT, client=client) as session:
        await registry_b.register(session, call_sid=SID)
        await asyncio.sleep(1.5)  # longer than the lease: only renewals keep it
        assert await redis_client.get(key) == f"worker-b {session.conversation_id}".encode()
        await redis_client.delete(key)  # as after a Redis restart, or a worker paused too long
        deadline = time.monotonic() + 1.0
        while await redis_client.get(key) is None:
            assert time.monotonic() < deadline, "the heartbeat did not restore the key"
            await asyncio.sleep(0.02)


async def test_a_later_registration_on_another_worker_takes_the_call(
    client: AsyncElevenLabsClient,
    emulator: Emulator,
    redis_client: redis.asyncio.Redis,
    key_prefix: str,
    worker_a: RedisRouter,
    registry_b: SessionRegistry,
) -> None:
    registry_c = SessionRegistry()
    router_c = RedisRouter(redis_client, registry_c, namespace=key_prefix, worker_id="worker-c")
    async with (
        router_c,
        ConversationSession(AGENT, client=client) as old,
        ConversationSession(AGENT, client=client) as new,
    ):
        await registry_b.register(old, call_sid=SID)
        await registry_c.register(new, call_sid=SID)  # the bridge reconnected on worker C
        await asyncio.sleep(0.8)  # two of B's heartbeats: B must not take the call back
        assert await worker_a.owner(call_sid=SID) == "worker-c"
        receipt = await Sender(router=worker_a).send_contextual_update("here", call_sid=SID)
        assert (receipt.worker, receipt.conversation_id) == ("worker-c", new.conversation_id)
        assert updates(emulator, new.conversation_id or "") == ["here"]
        assert updates(emulator, old.conversation_id or "") == []


async def test_a_worker_without_the_session_answers_not_live(
    redis_client: redis.asyncio.Redis,
    key_prefix: str,
    worker_a: RedisRouter,
    registry_b: SessionRegistry,
) -> None:
    # Ownership says B, B is listening, but B's registry has no such call (it closed a moment
    # ago, its withdrawal still on the way).
    await redis_client.set(f"{key_prefix}:route:sid:{{{OTHER_SID}}}", "worker-b conv_gone", px=5000)
    with pytest.raises(NotLive) as info:
        await Sender(router=worker_a).send_user_message("hello?", call_sid=OTHER_SID)
    assert info.value.reasons == {"session": "worker worker-b no longer holds the session"}


async def test_garbage_on_a_worker_channel_is_ignored_and_it_keeps_delivering(
    client: AsyncElevenLabsClient,
    redis_client: redis.asyncio.Redis,
    key_prefix: str,
    worker_a: RedisRouter,
    registry_b: SessionRegistry,
) -> None:
    channel = f"{key_prefix}:route:worker:worker-b"
    for junk in (b"not json", b"[]", b'{"op": "send"}', b'{"op": "x", "id": 1, "from": "a"}'):
        assert await redis_client.publish(channel, junk) == 1
    async with ConversationSession(AGENT, client=client) as session:
        await registry_b.register(session, call_sid=SID)
        receipt = await Sender(router=worker_a).send_contextual_update("still here", call_sid=SID)
    assert receipt.worker == "worker-b"


async def test_routing_survives_redis_forgetting_its_scripts(
    client: AsyncElevenLabsClient,
    redis_client: redis.asyncio.Redis,
    worker_a: RedisRouter,
    registry_b: SessionRegistry,
) -> None:
    async with ConversationSession(AGENT, client=client) as session:
        await registry_b.register(session, call_sid=SID)
        await redis_client.script_flush()  # as after a Redis restart or failover
        receipts = await asyncio.gather(
            *(Sender(router=worker_a).send_user_message(f"q{i}", call_sid=SID) for i in range(3))
        )
    assert [r.worker for r in receipts] == ["worker-b"] * 3


async def test_a_silent_owner_makes_the_send_time_out_not_hang(
    redis_client: redis.asyncio.Redis, key_prefix: str
) -> None:
    # A worker that is subscribed but never answers (frozen): a real subscriber on Redis.
    ghost = redis_client.pubsub()
    await ghost.subscribe(f"{key_prefix}:route:worker:ghost")
    await redis_client.set(f"{key_prefix}:route:sid:{{{SID}}}", "ghost conv_x", px=5000)
    async with RedisRouter(redis_client, namespace=key_prefix, ack_timeout=0.2) as router:
        started = time.monotonic()
        with pytest.raises(RouteTimeout) as info:
            await Sender(router=router).send_contextual_update("anyone?", call_sid=SID)
        assert 0.2 <= time.monotonic() - started < 1.0
    assert info.value.worker == "ghost"
    assert "may or may not have arrived" in str(info.value)
    await ghost.aclose()


async def test_a_gone_owner_is_noticed_on_the_send_and_forgotten(
    redis_client: redis.asyncio.Redis, key_prefix: str, worker_a: RedisRouter
) -> None:
    key = f"{key_prefix}:route:sid:{{{SID}}}"
    await redis_client.set(key, "nobody-listens conv_x", px=5000)
    with pytest.raises(NotLive) as info:
        await Sender(router=worker_a).send_contextual_update("x", call_sid=SID)
    assert info.value.reasons["session"].endswith(
        "worker nobody-listens held the session but is gone"
    )
    assert await redis_client.get(key) is None  # cleaned up in the same round trip


async def test_without_a_route_the_sender_falls_back_to_the_mailbox(
    worker_a: RedisRouter,
) -> None:
    mailbox = MemoryMailbox()
    receipt = await Sender(router=worker_a, mailbox=mailbox).send_contextual_update(
        "later", call_sid=SID
    )
    assert (receipt.channel, receipt.worker) == ("mailbox", None)
    assert await mailbox.drain(SID) == [{"type": "contextual_update", "text": "later"}]


async def test_when_redis_goes_away_sends_fall_back_instead_of_failing_silently(
    key_prefix: str,
) -> None:
    proxy = CuttableProxy(6379)  # this worker's only way to Redis
    await proxy.start()
    client = redis.asyncio.Redis.from_url(f"redis://127.0.0.1:{proxy.port}/0")
    mailbox = MemoryMailbox()
    async with RedisRouter(client, namespace=key_prefix) as router:
        sender = Sender(router=router, mailbox=mailbox)
        await proxy.aclose()  # Redis is unreachable from here on
        receipt = await sender.send_contextual_update("kept", call_sid=SID)
        assert receipt.channel == "mailbox"
        with pytest.raises(NotLive) as info:
            await sender.send_contextual_update("no mailbox", call_sid=SID, channel="session")
        assert "Redis is unavailable" in info.value.reasons["session"]
        await sender.aclose()
    await client.aclose()
    assert await mailbox.drain(SID) == [{"type": "contextual_update", "text": "kept"}]


def test_bad_settings_are_refused(key_prefix: str) -> None:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    with pytest.raises(ValueError, match="whitespace"):
        RedisRouter(client, worker_id="two words")
    with pytest.raises(ValueError, match="positive"):
        RedisRouter(client, lease=0)


# -- the session's worker as a real OS process -----------------------------------------------

WORKER_B = r"""
import asyncio, sys
import redis.asyncio
from callsid_resolver import AsyncElevenLabsClient
from callsid_resolver.live import ConversationSession, RedisRouter, SessionRegistry

base_url, prefix, call_sid, lease, agent, redis_url = sys.argv[1:7]

async def main():
    client = redis.asyncio.Redis.from_url(redis_url)
    registry = SessionRegistry()
    async with AsyncElevenLabsClient("test-key", base_url=base_url) as api, RedisRouter(
        client, registry, namespace=prefix, worker_id="worker-b", lease=float(lease)
    ), ConversationSession(agent, client=api) as session:
        await registry.register(session, call_sid=call_sid)
        print(session.conversation_id, flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""
LEASE = 1.5


@pytest.fixture
def process_b(
    server: EmulatorServer, key_prefix: str
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    args = [server.base_url, key_prefix, SID, str(LEASE), AGENT, REDIS_URL]
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER_B, *args], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    conversation_id = process.stdout.readline().strip()
    assert conversation_id.startswith("conv_"), "worker B did not start"
    yield process, conversation_id
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
    process.stdout.close()


async def test_across_processes_sends_arrive_in_order_and_a_killed_worker_means_not_live(
    emulator: Emulator,
    worker_a: RedisRouter,
    process_b: tuple[subprocess.Popen[str], str],
) -> None:
    process, conversation_id = process_b
    sender = Sender(router=worker_a)
    receipts = await asyncio.gather(
        *(sender.send_contextual_update(f"n{i}", call_sid=SID) for i in range(200))
    )
    assert {(r.worker, r.conversation_id) for r in receipts} == {("worker-b", conversation_id)}
    await eventually(lambda: len(updates(emulator, conversation_id)) == 200)
    assert updates(emulator, conversation_id) == [f"n{i}" for i in range(200)]

    process.kill()
    process.wait(timeout=10)
    killed = time.monotonic()
    with pytest.raises(NotLive) as info:
        await sender.send_contextual_update("after", call_sid=SID)
    assert time.monotonic() - killed < LEASE  # within the heartbeat bound (in fact at once)
    assert "worker-b held the session but is gone" in info.value.reasons["session"]
    assert updates(emulator, conversation_id)[-1] == "n199"
    await sender.aclose()


async def test_a_frozen_worker_times_out_then_is_not_live_within_the_lease(
    worker_a: RedisRouter, process_b: tuple[subprocess.Popen[str], str]
) -> None:
    process, _ = process_b
    worker_a.ack_timeout = 0.3
    sender = Sender(router=worker_a)
    assert (await sender.send_contextual_update("before", call_sid=SID)).worker == "worker-b"
    os.kill(process.pid, signal.SIGSTOP)  # still connected to Redis, answering nothing
    frozen = time.monotonic()
    outcomes: list[str] = []
    while True:
        try:
            await sender.send_contextual_update("anyone?", call_sid=SID)
            outcomes.append("delivered")
        except RouteTimeout:
            outcomes.append("timeout")
        except NotLive:
            break
        assert time.monotonic() - frozen < 10, outcomes
    elapsed = time.monotonic() - frozen
    assert outcomes
    assert set(outcomes) == {"timeout"}
    # The lease runs out at most LEASE after B's last renewal; a send may be waiting on its
    # acknowledgement then.
    assert elapsed < LEASE + worker_a.ack_timeout + 0.5
    os.kill(process.pid, signal.SIGKILL)
    await sender.aclose()


async def test_a_burst_crosses_redis_as_runs_with_one_acknowledgement_each(
    client: AsyncElevenLabsClient,
    emulator: Emulator,
    worker_a: RedisRouter,
    registry_b: SessionRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    published: list[int] = []  # events per routed message
    route = worker_a._wire.route

    async def counting(*args: Any) -> list[Any]:
        published.extend(message.count('"type"') for _, (message,) in args[3])
        return await route(*args)

    monkeypatch.setattr(worker_a._wire, "route", counting)
    async with ConversationSession(AGENT, client=client) as session:
        await registry_b.register(session, call_sid=SID)
        sender = Sender(router=worker_a)
        receipts = await asyncio.gather(
            *(sender.send_contextual_update(f"m{i}", call_sid=SID) for i in range(600))
        )
        assert {(r.channel, r.worker, r.confirmed) for r in receipts} == {
            ("session", "worker-b", True)
        }
        assert sum(published) == 600
        assert len(published) <= 6  # runs of up to 256, not one message per send
        cid = session.conversation_id or ""
        await eventually(lambda: len(updates(emulator, cid)) >= 600)
        assert updates(emulator, cid)[-600:] == [f"m{i}" for i in range(600)]
        await sender.aclose()


async def test_a_run_delivered_twice_is_written_once(
    client: AsyncElevenLabsClient,
    emulator: Emulator,
    redis_client: redis.asyncio.Redis,
    key_prefix: str,
    worker_a: RedisRouter,
    registry_b: SessionRegistry,
) -> None:
    """A client that retries a pipeline whose reply was lost runs the routing script again:
    the owner must drop the repeat (same sender, same id), not write it twice."""
    async with ConversationSession(AGENT, client=client) as session:
        await registry_b.register(session, call_sid=SID)
        run = json.dumps(
            {
                "op": "run",
                "id": 77,
                "from": "worker-a",
                "sid": SID,
                "events": [{"type": "contextual_update", "text": "once"}],
            }
        )
        channel = f"{key_prefix}:route:worker:worker-b"
        assert await redis_client.publish(channel, run) == 1
        assert await redis_client.publish(channel, run) == 1
        receipt = await Sender(router=worker_a).send_contextual_update("after", call_sid=SID)
        assert receipt.worker == "worker-b"
        cid = session.conversation_id or ""
        await eventually(lambda: updates(emulator, cid)[-1:] == ["after"])
        assert updates(emulator, cid).count("once") == 1
