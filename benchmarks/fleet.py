"""Issue #16, item 4: the router and the mailbox per run, each against a baseline of the same run.

* Router burst: a burst of contextual updates through `Sender` → `RedisRouter` → the session
  worker B holds, against the same burst on a `ConversationSession` this process holds (what a
  user writes by hand). Goal: >= 0.5x. Every send is confirmed, the routed ones acknowledged.
* Mailbox burst: the same burst through `Sender` → `RedisMailbox`, against raw `RPUSH`es of the
  same JSON on the same client (a `BlockingConnectionPool`, as the library builds one). Goal:
  >= 0.8x. Both spread over the same few calls (lanes).

Baseline and candidate run interleaved, several rounds, in one process; each goal is the median
of the rounds' rates. `quick=True` runs small bursts in seconds and raises only when a message is
lost, reordered or delivered the wrong way, never on a rate.

Run alone: `python -m benchmarks.fleet [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio

from callsid_resolver import AsyncElevenLabsClient
from callsid_resolver.live import ConversationSession, RedisMailbox, RedisRouter, Sender

from .goals import Goal, markdown_table
from .sending import AGENT, THERE_SID, emulator_and_worker_b

AREA = "fleet"
REDIS_URL = "redis://127.0.0.1:6379/0"
LANES = 8  # calls the mailbox burst is spread over
MAILBOX_SIDS = [f"CA{i:032x}" for i in range(1, LANES + 1)]


async def _burst(send: Callable[[int], Awaitable[object]], n: int) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(send(i) for i in range(n)))
    return n / (time.perf_counter() - start)


def _client() -> redis.asyncio.Redis:
    pool = redis.asyncio.BlockingConnectionPool.from_url(REDIS_URL, max_connections=50, timeout=30)
    return redis.asyncio.Redis.from_pool(pool)


async def _router_rounds(base_url: str, prefix: str, n: int, rounds: int) -> tuple[float, float]:
    """Median (session burst, router burst) in msg/s."""
    client = _client()
    base, routed = [], []
    async with (
        AsyncElevenLabsClient("bench-key", base_url=base_url) as api,
        ConversationSession(AGENT, client=api) as session,
        RedisRouter(client, namespace=prefix, worker_id="bench-worker-a") as router,
    ):
        sender = Sender(router=router, queue_size=n)

        async def there(i: int) -> None:
            receipt = await sender.send_contextual_update(f"t{i}", call_sid=THERE_SID)
            if (receipt.channel, receipt.worker) != ("session", "bench-worker-b"):
                raise AssertionError(f"delivered by {receipt.channel}/{receipt.worker}")

        async def here(i: int) -> None:
            await session.send_contextual_update(f"d{i}")

        await _burst(here, min(n, 100))  # warm-up: connections, scripts
        await _burst(there, min(n, 100))
        for _ in range(rounds):
            base.append(await _burst(here, n))
            routed.append(await _burst(there, n))
        await sender.aclose()
    await client.aclose()
    return statistics.median(base), statistics.median(routed)


async def _mailbox_rounds(prefix: str, n: int, rounds: int) -> tuple[float, float]:
    """Median (raw RPUSH burst, Sender → RedisMailbox burst) in msg/s; checks what arrived."""
    client = _client()
    mailbox = RedisMailbox(client, namespace=prefix, max_items=n + 1)
    sender = Sender(mailbox=mailbox, queue_size=n)
    item = {"type": "contextual_update", "text": "m"}
    raw_key = f"{prefix}:raw"

    async def raw(i: int) -> None:
        await client.rpush(f"{raw_key}:{i % LANES}", json.dumps(item | {"text": f"m{i}"}))

    async def posted(i: int) -> None:
        receipt = await sender.send_contextual_update(f"m{i}", call_sid=MAILBOX_SIDS[i % LANES])
        if receipt.channel != "mailbox":
            raise AssertionError(f"delivered by {receipt.channel}")

    base, ours = [], []
    try:
        await _burst(raw, min(n, 200))  # warm-up: the pool's connections, the scripts
        await _burst(posted, min(n, 200))
        for sid in MAILBOX_SIDS:
            await mailbox.drain(sid)
        for _ in range(rounds):
            base.append(await _burst(raw, n))
            ours.append(await _burst(posted, n))
            for lane, sid in enumerate(MAILBOX_SIDS):  # nothing lost, nothing reordered
                texts = [entry["text"] for entry in await mailbox.drain(sid)]
                if texts != [f"m{i}" for i in range(lane, n, LANES)]:
                    raise AssertionError(f"mailbox of lane {lane} holds {len(texts)} items")
            await client.delete(*(f"{raw_key}:{lane}" for lane in range(LANES)))
    finally:
        await sender.aclose()
        await client.aclose()
    return statistics.median(base), statistics.median(ours)


def measure(quick: bool) -> list[Goal]:
    """The router and mailbox goals of issue #16 item 4, each against its same-run baseline."""
    n, rounds = (200, 1) if quick else (2_000, 5)
    prefix = f"bench-fleet-{uuid.uuid4().hex[:8]}"
    with emulator_and_worker_b(REDIS_URL, prefix) as base_url:
        session, routed = asyncio.run(_router_rounds(base_url, prefix, n, rounds))
    raw, mailbox = asyncio.run(_mailbox_rounds(prefix, n, rounds))
    note = f"bursts of {n:,}, median of {rounds} interleaved round(s)"
    return [
        Goal(
            AREA,
            "router burst >= 0.5x the hand-held session burst",
            routed,
            session,
            "msg/s",
            0.5,
            baseline_name="ConversationSession.send, this process",
            notes=note,
        ),
        Goal(
            AREA,
            "Sender -> RedisMailbox burst >= 0.8x raw RPUSH",
            mailbox,
            raw,
            "msg/s",
            0.8,
            baseline_name=f"raw RPUSH, {LANES} keys",
            notes=note,
        ),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(markdown_table(measure(parser.parse_args().quick)))
