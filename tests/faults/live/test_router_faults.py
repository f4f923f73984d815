"""Whatever arrives on a worker's pub/sub channel, its router keeps listening and delivering;
and if its listener ends anyway, senders learn `NotLive` at once (issue #15, item 5)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callsid_resolver import AsyncElevenLabsClient, CallSidResolverError, NotLive
from callsid_resolver.live import (
    ConversationSession,
    MemoryMailbox,
    RedisRouter,
    Sender,
    SessionRegistry,
)
from callsid_resolver.live._router_messages import Ack, MalformedMessage, Send, decode

from ...live.conftest import AGENT, REDIS_URL

SID = "CA" + "fa17" * 8
HOSTILE = [
    b'{"op":"send","id":1e400,"from":"worker-a","sid":"' + SID.encode() + b'","event":{}}',
    b'{"op":"send","id":7,"from":"worker-a","sid":"' + SID.encode() + b'","event":"str"}',
    b'{"op":"send","id":8,"from":"worker-a","sid":["x"],"event":{"type":"user_activity"}}',
    b'{"op":"send","id":9,"from":"worker-a","cid":{},"event":{"type":"user_activity"}}',
    b"[" * 200_000 + b"]" * 200_000,
    b'{"op":"send","id":' + b"[" * 50_000 + b"]" * 50_000 + b',"from":"worker-a"}',
    b'{"op":"ack","id":1,"from":"worker-a","code":"1000","error":"closed"}',
    b'{"op":"ack","id":-1,"from":"x y"}',
    b'{"op":"send","id":10,"from":"worker-a","event":{"type":"user_message","text":7}}',
    b"\xff\xfe not utf-8",
    b"",
]
JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)
# Values shaped like router messages, so that the interesting branches are reached often.
FIELDS = st.fixed_dictionaries(
    {"op": st.sampled_from(["send", "ack", "x"]) | JSON},
    optional={
        "id": st.integers(min_value=-2, max_value=2**64) | st.floats() | JSON,
        "from": st.sampled_from(["worker-a", "", "a b"]) | JSON,
        "sid": st.just(SID) | JSON,
        "cid": JSON,
        "event": st.fixed_dictionaries(
            {"type": st.sampled_from(["contextual_update", "user_message", "audio"]) | JSON},
            optional={"text": JSON},
        )
        | JSON,
        "error": st.sampled_from(["not_here", "closed", "failed", "other"]) | JSON,
        "code": JSON,
        "sent": JSON,
    },
)


@given(st.one_of(JSON, FIELDS))
@settings(max_examples=150, deadline=None)
def test_decode_refuses_with_malformed_message_or_returns_a_record(value: Any) -> None:
    data = json.dumps(value)
    try:
        message = decode(data)
    except MalformedMessage as exc:
        envelope = exc.envelope
        assert envelope is None or envelope.op in ("send", "ack")
        return
    assert isinstance(message, (Send, Ack))
    assert decode(message.to_json()) == message  # what we write, we read back the same


@given(st.binary(max_size=200))
@settings(max_examples=200, deadline=None)
def test_decode_takes_any_bytes(data: bytes) -> None:
    with contextlib.suppress(MalformedMessage):
        decode(data)


@pytest.fixture
async def redis_client() -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def routers(
    redis_client: redis.asyncio.Redis, key_prefix: str
) -> AsyncIterator[tuple[RedisRouter, SessionRegistry]]:
    """worker-a sends; worker-b holds sessions in its registry."""
    registry = SessionRegistry()
    async with (
        RedisRouter(
            redis_client, namespace=key_prefix, worker_id="worker-a", ack_timeout=2
        ) as sender_side,
        RedisRouter(redis_client, registry, namespace=key_prefix, worker_id="worker-b", lease=1),
    ):
        yield sender_side, registry


async def test_hostile_messages_are_dropped_and_the_listener_keeps_delivering(
    client: AsyncElevenLabsClient,
    redis_client: redis.asyncio.Redis,
    key_prefix: str,
    routers: tuple[RedisRouter, SessionRegistry],
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker_a, registry = routers
    channel = f"{key_prefix}:route:worker:worker-b"
    async with ConversationSession(AGENT, client=client) as session:
        await registry.register(session, call_sid=SID)
        sender = Sender(router=worker_a, send_timeout=2)
        for junk in HOSTILE:
            assert await redis_client.publish(channel, junk) == 1
            receipt = await sender.send_contextual_update("after junk", call_sid=SID)
            assert receipt.worker == "worker-b"
        await sender.aclose()
    dropped = [r for r in caplog.records if "dropped a malformed router message" in r.message]
    assert len(dropped) == len(HOSTILE)
    # A send whose envelope was readable is refused at once, not left to time out.
    assert await _refused_quickly(redis_client, key_prefix)


async def _refused_quickly(client: redis.asyncio.Redis, key_prefix: str) -> bool:
    listener = client.pubsub()
    await listener.subscribe(f"{key_prefix}:route:worker:prober")
    bad_send = {"op": "send", "id": 42, "from": "prober", "sid": ["x"], "event": "str"}
    await client.publish(f"{key_prefix}:route:worker:worker-b", json.dumps(bad_send))
    deadline = time.monotonic() + 2
    try:
        while time.monotonic() < deadline:
            message = await listener.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message is not None:
                reply = json.loads(message["data"])
                return bool(reply["id"] == 42 and reply["error"] == "failed")
        return False
    finally:
        await listener.aclose()


@given(st.lists(st.one_of(JSON, FIELDS).map(json.dumps), min_size=1, max_size=5))
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_arbitrary_json_on_the_channel_never_ends_the_listener(
    key_prefix: str, messages: list[str]
) -> None:
    async def run() -> None:
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        registry = SessionRegistry()
        router = RedisRouter(client, registry, namespace=key_prefix, worker_id="worker-b")
        async with router:
            for message in messages:
                await client.publish(f"{key_prefix}:route:worker:worker-b", message)
            # A probe the listener answers only if it is still running.
            assert await _refused_quickly(client, key_prefix)
            listener = next(t for t in router._tasks if t.get_name() == "callsid-router-listen")
            assert not listener.done()
        await client.aclose()

    asyncio.run(run())


async def test_a_listener_that_dies_anyway_withdraws_the_leases(
    client: AsyncElevenLabsClient,
    redis_client: redis.asyncio.Redis,
    key_prefix: str,
    routers: tuple[RedisRouter, SessionRegistry],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker_a, registry = routers
    async with ConversationSession(AGENT, client=client) as session:
        await registry.register(session, call_sid=SID)
        sender = Sender(router=worker_a, mailbox=MemoryMailbox(), send_timeout=2)
        assert (await sender.send_user_message("one", call_sid=SID)).worker == "worker-b"

        # A bug past the per-message guard: the listener task itself ends with an error.
        async def broken(self: RedisRouter, data: bytes | str) -> None:
            raise SystemError("a bug in the listener")

        monkeypatch.setattr(RedisRouter, "_handle", broken)
        await redis_client.publish(f"{key_prefix}:route:worker:worker-b", b"{}")
        await asyncio.sleep(0.1)
        assert await worker_a.owner(call_sid=SID) is None  # withdrawn, not left to renew
        started = time.monotonic()
        receipt = await sender.send_user_message("two", call_sid=SID)
        assert receipt.channel == "mailbox"  # fell back at once: no RouteTimeout
        assert time.monotonic() - started < 0.5
        with pytest.raises(NotLive) as info:
            await sender.send_user_message("three", call_sid=SID, channel="session")
        assert "no worker of the fleet holds a session" in info.value.reasons["session"]
        await asyncio.sleep(0.5)  # past a heartbeat: the lease is not renewed behind our back
        assert await worker_a.owner(call_sid=SID) is None
        await sender.aclose()
        # The dead listener's own worker, as a sender: no acknowledgement could reach it.
        worker_b = next(iter(registry._listeners))
        assert isinstance(worker_b, RedisRouter)
        with pytest.raises(NotLive) as own:
            await Sender(router=worker_b, send_timeout=2).send_user_message("x", call_sid=SID)
        assert "stopped listening" in own.value.reasons["session"]
    assert isinstance(info.value, CallSidResolverError)
