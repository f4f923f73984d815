"""Sending into a live call: throughput and per-message latency, against a hand-held session.

Three processes on loopback: the emulator (its own process, as in the resolution benchmark), a
"worker B" process holding the call's Agents WebSocket behind a `RedisRouter`, and this one. The
baseline is what a user writes without the `Sender`: `ConversationSession.send_contextual_update`
on a socket this process holds. Every send is confirmed (see `live/_transport.py`); a send through
the router is acknowledged by worker B once its own write is confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio

from callsid_resolver import AsyncElevenLabsClient
from callsid_resolver.live import ConversationSession, RedisRouter, Sender, SessionRegistry
from callsid_resolver.testing import EmulatorProcess

AGENT = "agent_fake0example0agent0000000001"
HERE_SID = "CA" + "1" * 32
THERE_SID = "CA" + "2" * 32
BASELINE = "baseline: ConversationSession.send, this process"

WORKER_B = r"""
import asyncio, sys
import redis.asyncio
from callsid_resolver import AsyncElevenLabsClient
from callsid_resolver.live import ConversationSession, RedisRouter, SessionRegistry

base_url, prefix, call_sid, agent, redis_url = sys.argv[1:6]

async def main():
    client = redis.asyncio.Redis.from_url(redis_url)
    registry = SessionRegistry()
    async with AsyncElevenLabsClient("bench-key", base_url=base_url) as api, RedisRouter(
        client, registry, namespace=prefix, worker_id="bench-worker-b"
    ), ConversationSession(agent, client=api) as session:
        await registry.register(session, call_sid=call_sid)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
    await client.aclose()

asyncio.run(main())
"""


@dataclass
class SendResult:
    scenario: str
    messages: int
    serial_per_second: float
    median_ms: float
    p95_ms: float
    burst_per_second: float


async def serial(send: Callable[[int], Awaitable[object]], n: int) -> tuple[float, list[float]]:
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        await send(i)
        latencies.append(time.perf_counter() - t)
    return n / (time.perf_counter() - start), latencies


async def burst(send: Callable[[int], Awaitable[object]], n: int) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(send(i) for i in range(n)))
    return n / (time.perf_counter() - start)


async def _measure(name: str, send: Callable[[int], Awaitable[object]], n: int) -> SendResult:
    await burst(send, min(n, 200))  # warm-up: connections, scripts, caches
    rate, latencies = await serial(send, n)
    ms = sorted(x * 1000 for x in latencies)
    p95 = ms[max(int(len(ms) * 0.95) - 1, 0)]
    return SendResult(name, n, rate, statistics.median(ms), p95, await burst(send, n))


def _expect(kind: str, worker: str | None) -> Callable[[Any], None]:
    def check(receipt: Any) -> None:
        if (receipt.channel, receipt.worker) != (kind, worker):
            raise AssertionError(f"delivered by {receipt.channel}/{receipt.worker}")

    return check


async def _run(base_url: str, redis_url: str, prefix: str, n: int) -> list[SendResult]:
    client = redis.asyncio.Redis.from_url(redis_url)
    results: list[SendResult] = []
    async with (
        AsyncElevenLabsClient("bench-key", base_url=base_url) as api,
        ConversationSession(AGENT, client=api) as session,
        RedisRouter(client, namespace=prefix, worker_id="bench-worker-a") as router,
    ):
        results.append(
            await _measure(BASELINE, lambda i: session.send_contextual_update(f"d{i}"), n)
        )
        registry = SessionRegistry()
        await registry.register(session, call_sid=HERE_SID)
        sender = Sender(registry=registry, router=router, queue_size=n)
        local, remote = _expect("session", None), _expect("session", "bench-worker-b")

        async def here(i: int) -> None:
            local(await sender.send_contextual_update(f"h{i}", call_sid=HERE_SID))

        async def there(i: int) -> None:
            remote(await sender.send_contextual_update(f"t{i}", call_sid=THERE_SID))

        results.append(await _measure("Sender → own session, this process", here, n))
        results.append(await _measure("Sender → RedisRouter → session on worker B", there, n))
        await sender.aclose()
    await client.aclose()
    return results


@contextlib.contextmanager
def emulator_and_worker_b(redis_url: str, prefix: str) -> Iterator[str]:
    """The emulator, and worker B holding call `THERE_SID` behind a `RedisRouter` under
    `prefix`; yields the emulator's base URL."""
    with EmulatorProcess(recording="default") as server:
        server.remote.configure(ping_interval=5.0)
        # Our own interpreter and our own arguments: nothing untrusted reaches the command line.
        worker = subprocess.Popen(  # noqa: S603
            [sys.executable, "-c", WORKER_B, server.base_url, prefix, THERE_SID, AGENT, redis_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert worker.stdin is not None
        assert worker.stdout is not None
        try:
            if worker.stdout.readline().strip() != "ready":
                raise RuntimeError("worker B did not start")
            yield server.base_url
        finally:
            worker.stdin.close()
            worker.wait(timeout=30)
            worker.stdout.close()


def measure_sending(redis_url: str, messages: int) -> list[SendResult]:
    """Run the three paths; raises if any message is not delivered where it should be."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    with emulator_and_worker_b(redis_url, prefix) as base_url:
        return asyncio.run(_run(base_url, redis_url, prefix, messages))


def markdown(rows: list[dict[str, Any]]) -> list[str]:
    base = next(r for r in rows if r["scenario"] == BASELINE)
    lines = [
        "## Sending into a live call",
        "",
        f"{base['messages']:,} contextual updates per path, every one confirmed; the emulator, "
        "worker B and the sender are three processes on loopback, Redis on loopback. Ratios are "
        "against the baseline in the same run.",
        "",
        "| path | one at a time, msg/s | median ms | p95 ms | x baseline latency "
        "| burst, msg/s | x baseline burst |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['serial_per_second']:,.0f} | {r['median_ms']:.3f} | "
            f"{r['p95_ms']:.3f} | {r['median_ms'] / base['median_ms']:.2f} | "
            f"{r['burst_per_second']:,.0f} | "
            f"{r['burst_per_second'] / base['burst_per_second']:.2f} |"
        )
    return [*lines, ""]
