"""Routed sends while the fleet's Redis is killed and restarted (issue #15, items 8 and 13).

A real `redis-server` of the test's own (append-only file, fsync always, as in production) is
SIGKILLed a quarter of the way through 640 sends and restarted half way. Every send must end in
exactly one reported outcome that is in the error tree: delivered through the router, left in
the mailbox, `NotLive`, or `RouteTimeout` (may or may not have arrived). Nothing delivered may
go unreported, nothing reported may be missing, and nothing may arrive twice.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from callsid_resolver import (
    AsyncElevenLabsClient,
    CallSidResolverError,
    MailboxUnavailable,
    NotLive,
    RouteTimeout,
    SenderError,
)
from callsid_resolver.live import (
    ConversationSession,
    RedisMailbox,
    RedisRouter,
    Sender,
    SessionRegistry,
)
from callsid_resolver.live._router import NoRoute
from callsid_resolver.testing import Emulator

from ...live.conftest import AGENT, eventually
from ...redis_server import RedisServer

SID = "CA" + "b00b" * 8
SENDS = 640
WAVE = 16  # sends made together; waves follow each other as fast as they settle
KILL_AT, RESTART_AT = SENDS // 4, SENDS // 2


def _client(server: RedisServer) -> redis.asyncio.Redis:
    # No retries inside redis-py: a retried pipeline could run a routing script twice.
    return redis.asyncio.Redis.from_url(
        server.url, socket_timeout=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )


@pytest.fixture
async def clients(
    persistent_redis_server: RedisServer,
) -> AsyncIterator[tuple[redis.asyncio.Redis, redis.asyncio.Redis]]:
    a, b = _client(persistent_redis_server), _client(persistent_redis_server)
    yield a, b
    await a.aclose()
    await b.aclose()


async def _routed_again(sender: Sender) -> float:
    """Seconds until a send through the router is delivered again after the restart."""
    loop_time = asyncio.get_running_loop().time
    begin = loop_time()
    while loop_time() - begin < 10:
        try:
            await sender.send_user_message("probe", call_sid=SID, channel="session")
            return loop_time() - begin
        except NotLive:
            await asyncio.sleep(0.05)
    raise AssertionError("routing did not recover within 10 s of the restart")


def outcome_of(result: Any) -> str:
    if not isinstance(result, BaseException):
        return result.channel  # type: ignore[no-any-return]
    if not isinstance(result, CallSidResolverError):
        return f"raw {type(result).__name__}"
    return type(result).__name__


async def test_640_routed_sends_across_a_redis_kill_and_restart(
    client: AsyncElevenLabsClient,
    emulator: Emulator,
    persistent_redis_server: RedisServer,
    clients: tuple[redis.asyncio.Redis, redis.asyncio.Redis],
    key_prefix: str,
) -> None:
    client_a, client_b = clients
    registry = SessionRegistry()
    mailbox = RedisMailbox(client_a, namespace=key_prefix, max_items=SENDS)
    outcomes: dict[str, str] = {}
    errors: dict[str, BaseException] = {}
    async with (
        RedisRouter(
            client_a, namespace=key_prefix, worker_id="worker-a", ack_timeout=1
        ) as worker_a,
        RedisRouter(client_b, registry, namespace=key_prefix, worker_id="worker-b", lease=1.5),
        ConversationSession(AGENT, client=client) as session,
    ):
        await registry.register(session, call_sid=SID)
        sender = Sender(router=worker_a, mailbox=mailbox, send_timeout=3)

        async def send(text: str) -> None:
            try:
                result: Any = await sender.send_contextual_update(text, call_sid=SID)
            except BaseException as exc:
                result = exc
                errors[text] = exc
            outcomes[text] = outcome_of(result)

        made = 0
        faults: list[asyncio.Task[None]] = []
        while made < SENDS:
            if made == KILL_AT:  # the kill lands while two waves are in flight...
                faults.append(asyncio.create_task(asyncio.to_thread(persistent_redis_server.kill)))
            if made == KILL_AT + 2 * WAVE:  # ...and is over before the next ones, however slow
                await asyncio.gather(*faults)
            if made == RESTART_AT:
                await asyncio.gather(*faults)
                restarted = asyncio.to_thread(persistent_redis_server.start)
                faults.append(asyncio.create_task(restarted))
            await asyncio.gather(*(send(f"m{made + i}") for i in range(WAVE)))
            made += WAVE
            await asyncio.sleep(0.04)  # paced: the run outlasts the recovery (lease / 3)
        await asyncio.gather(*faults)
        recovered = await _routed_again(sender)
        await sender.aclose()

        by_outcome = collections.defaultdict(set)
        for text, outcome in outcomes.items():
            by_outcome[outcome].add(text)
        delivered = by_outcome["session"]
        cid = session.conversation_id or ""

        def received() -> list[str]:
            events = emulator.session_events(cid)
            return [e["text"] for e in events if e.get("type") == "contextual_update"]

        await eventually(lambda: delivered <= set(received()))
    drained = await mailbox.drain(SID)
    in_mailbox = [item["text"] for item in drained]
    arrived = received()
    counts = {outcome: len(texts) for outcome, texts in sorted(by_outcome.items())}
    print(f"\n{SENDS} sends, Redis killed after {KILL_AT}, restarted after {RESTART_AT}: {counts}")
    print(f"arrived in the session: {len(arrived)}, in the mailbox: {len(in_mailbox)}")
    print(f"routing delivered again {recovered:.2f} s after the last send")

    assert len(outcomes) == SENDS
    assert not [o for o in outcomes.values() if o.startswith("raw")], errors
    assert set(counts) <= {"session", "mailbox", "NotLive", "RouteTimeout"}
    # Nothing doubled: not within a channel, not across channels.
    assert len(arrived) == len(set(arrived))
    assert len(in_mailbox) == len(set(in_mailbox))
    assert not set(arrived) & set(in_mailbox)
    # Nothing lost: every reported delivery is there; nothing arrived that was reported failed.
    assert delivered <= set(arrived)
    assert by_outcome["mailbox"] <= set(in_mailbox)
    assert set(arrived) <= delivered | by_outcome["RouteTimeout"]
    assert set(in_mailbox) <= by_outcome["mailbox"]
    # The outage was real, and the fleet recovered from it.
    assert by_outcome["NotLive"]
    assert recovered < 3.0  # the listener resubscribed and the heartbeat re-announced the call
    assert {f"m{i}" for i in range(KILL_AT - WAVE, KILL_AT)} & delivered
    assert {f"m{i}" for i in range(SENDS - WAVE, SENDS)} <= delivered | by_outcome["mailbox"]
    for text in by_outcome["NotLive"]:
        reasons = errors[text].reasons  # type: ignore[attr-defined]
        assert "Redis is unavailable" in json.dumps(reasons), reasons
        assert isinstance(errors[text], NotLive)
        mailbox_error = errors[text].errors.get("mailbox")  # type: ignore[attr-defined]
        assert mailbox_error is None or isinstance(mailbox_error, MailboxUnavailable)
    for text in by_outcome["RouteTimeout"]:
        assert isinstance(errors[text], RouteTimeout)


async def test_with_redis_down_the_router_fails_inside_the_error_tree(
    redis_server: RedisServer, key_prefix: str
) -> None:
    client = _client(redis_server)
    await asyncio.to_thread(redis_server.kill)
    with pytest.raises(SenderError, match=r"could not start: Redis is unavailable \(") as info:
        await RedisRouter(client, namespace=key_prefix).start()
    assert str(redis_server.port) not in str(info.value)
    await asyncio.to_thread(redis_server.start)
    async with RedisRouter(client, namespace=key_prefix) as router:
        await asyncio.to_thread(redis_server.kill)
        with pytest.raises(NoRoute) as no_route:
            await router.owner(call_sid=SID)
        assert isinstance(no_route.value, SenderError)
        with pytest.raises(NotLive) as not_live:
            await Sender(router=router).send_user_message("x", call_sid=SID)
        assert not_live.value.reasons["session"].endswith("Redis is unavailable (ConnectionError)")
    await client.aclose()
