"""The warm path and memory per mapping (issue #16, items 2 and 5).

- Warm lookups: `resolve()` of call SIDs already in the resolver's `MemoryCache`, sync and async,
  against a bare cachetools `TTLCache.get` of the same SIDs, interleaved in one process; the
  median of several rounds, timed in the thread's CPU time. The resolver as it was (a cachetools
  `TLRUCache` behind the plan and the single flight; kept below as `TlruMemoryCache`) is
  measured in the same rounds, for the notes.
- Memory: bytes per conversation, both directions (call SID → conversation and back), stored as
  `remember()` stores them, measured with tracemalloc: 1,000,000 conversations (100,000 in quick)
  against the old representation (at a tenth of the count: 2 KB each).

Raises only when a correctness bound breaks (a warm lookup sent a request or answered wrong, or
the cache lost mappings), never on a wall time.

    python -m benchmarks.warm [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cachetools
import httpx

from callsid_resolver import (
    AsyncCallSidResolver,
    AsyncElevenLabsClient,
    CachedMapping,
    CallSidResolver,
    ElevenLabsClient,
    MemoryCache,
)

from .goals import Goal

AREA = "warm"
API_KEY = "sk_bench_0000000000000000000000000000000000000000"
AGENT = "agent_bench0warm0path000000000001"
MEMORY_GOAL = 400.0  # bytes per conversation, both directions (issue #16, item 5)


class TlruMemoryCache:
    """`MemoryCache` before issue #16, kept as the baseline: a cachetools `TLRUCache` of
    pydantic `CachedMapping`s under whole keys, behind one lock."""

    def __init__(self, maxsize: int = 100_000, ttl: float = 24 * 3600.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._data: cachetools.TLRUCache[str, tuple[CachedMapping, float]] = cachetools.TLRUCache(
            maxsize=maxsize, ttu=_expires_at, timer=time.monotonic
        )

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
        with self._lock:
            return [entry[0] if (entry := self._data.get(key)) else None for key in keys]

    def set_many(
        self,
        items: Mapping[str, CachedMapping],
        ttl: float | None = None,
        *,
        only_if_absent: bool = False,
    ) -> None:
        lifetime = self.ttl if ttl is None else ttl
        with self._lock:
            for key, value in items.items():
                if not (only_if_absent and key in self._data):
                    self._data[key] = (value, lifetime)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)


def _expires_at(_key: str, value: tuple[CachedMapping, float], now: float) -> float:
    return now + value[1]


def sid_of(i: int) -> str:
    return f"CA{i:032x}"


def conversation_of(i: int) -> str:
    return f"conv_{i:028x}"  # 33 characters, as the platform's ids


class _NoRequests:
    """A transport that counts requests: a warm lookup must send none."""

    def __init__(self) -> None:
        self.sent = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        return httpx.Response(500)


def _per_second(count: int, run: Callable[[], None]) -> float:
    # CPU time of this thread, not the wall clock: on a shared machine the wall clock also counts
    # the time other processes held the core, and that noise would swamp the ratios.
    start = time.thread_time()
    run()
    return count / (time.thread_time() - start)


def measure_speed(count: int, rounds: int) -> dict[str, float]:
    """Median lookups/s over `rounds` interleaved rounds: TTLCache.get, ours sync and async,
    and the resolver as it was (on a tenth of the SIDs: it is ~30x slower)."""
    sids = [sid_of(i) for i in range(count)]
    wire = _NoRequests()
    sync_client = ElevenLabsClient(API_KEY, transport=httpx.MockTransport(wire))
    async_client = AsyncElevenLabsClient(API_KEY, transport=httpx.MockTransport(wire))
    cache = MemoryCache(maxsize=4 * count)
    ours = CallSidResolver(sync_client, cache=cache)
    ours_async = AsyncCallSidResolver(async_client, cache=cache)
    before = CallSidResolver(sync_client, cache=TlruMemoryCache(maxsize=4 * count))
    bare: cachetools.TTLCache[str, str] = cachetools.TTLCache(maxsize=4 * count, ttl=3600)
    for i, sid in enumerate(sids):
        ours.remember(sid, conversation_of(i), agent_id=AGENT)
        before.remember(sid, conversation_of(i), agent_id=AGENT)
        bare[sid] = conversation_of(i)
    few = sids[: max(count // 10, 1)]
    for i, sid in enumerate(sids):  # the first read builds each entry's Resolution: warm it up
        found = ours.resolve(sid)
        if (found.conversation_id, found.requests) != (conversation_of(i), 0):
            raise AssertionError(f"warm lookup {i} answered {found!r}")
    loop = asyncio.new_event_loop()

    def bare_loop() -> None:
        get = bare.get
        for sid in sids:
            get(sid)

    def sync_loop() -> None:
        resolve = ours.resolve
        for sid in sids:
            resolve(sid)

    async def async_loop() -> float:
        resolve = ours_async.resolve
        start = time.thread_time()
        for sid in sids:
            await resolve(sid)
        return count / (time.thread_time() - start)

    def before_loop() -> None:
        resolve = before.resolve
        for sid in few:
            resolve(sid)

    rates: dict[str, list[float]] = {"bare": [], "sync": [], "async": [], "before": []}
    try:
        for _ in range(rounds):
            rates["bare"].append(_per_second(count, bare_loop))
            rates["sync"].append(_per_second(count, sync_loop))
            rates["async"].append(loop.run_until_complete(async_loop()))
            rates["before"].append(_per_second(len(few), before_loop))
    finally:
        loop.run_until_complete(async_client.aclose())
        loop.close()
        sync_client.close()
    if wire.sent:
        raise AssertionError(f"warm lookups sent {wire.sent} requests; expected none")
    return {name: statistics.median(values) for name, values in rates.items()}


def bytes_per_conversation(count: int, old: bool = False) -> float:
    """tracemalloc's count of what `count` conversations leave in the cache, both directions,
    written as `remember()` writes them: one mapping under the SID's and the conversation's key."""
    wire = _NoRequests()
    with ElevenLabsClient(API_KEY, transport=httpx.MockTransport(wire)) as client:
        gc.collect()
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            cache: Any = TlruMemoryCache(2 * count) if old else MemoryCache(maxsize=2 * count)
            resolver = CallSidResolver(client, cache=cache)
            keys, store = resolver.settings.keys, cache.set_many
            for i in range(count):
                sid, conversation = sid_of(i), conversation_of(i)
                # What `remember()` stores; built unvalidated here, as tracemalloc makes
                # validation slow and it leaves nothing behind.
                mapping = CachedMapping.model_construct(
                    call_sid=sid, conversation_id=conversation, agent_id=AGENT, primed=True
                )
                store({keys.sid(sid): mapping, keys.conversation(conversation): mapping})
            gc.collect()
            used = tracemalloc.get_traced_memory()[0] - start
        finally:
            tracemalloc.stop()
        probe = count // 2
        found = resolver.resolve(sid_of(probe))
        if len(cache) != 2 * count or found.conversation_id != conversation_of(probe) or wire.sent:
            raise AssertionError(f"the cache lost mappings: {len(cache)} of {2 * count} keys")
    return used / count


def measure(quick: bool) -> list[Goal]:
    """The area's goals: warm sync and async lookups against TTLCache.get, and bytes per
    conversation against the old representation (target: the cut that reaches 400 B)."""
    count, rounds = (2_000, 5) if quick else (20_000, 9)
    rates = measure_speed(count, rounds)
    stored = 100_000 if quick else 1_000_000
    old_stored = stored // 10
    old = bytes_per_conversation(old_stored, old=True)
    new = bytes_per_conversation(stored)
    before = f"before (plan, flight, TLRU): {rates['before']:,.0f}/s"
    return [
        Goal(
            AREA,
            "warm sync lookups >= 3x TTLCache.get",
            rates["sync"],
            rates["bare"],
            "lookups/s",
            3.0,
            baseline_name="cachetools TTLCache.get",
            notes=f"median of {rounds} interleaved rounds of {count:,} SIDs, CPU time; {before}",
        ),
        Goal(
            AREA,
            "warm async lookups >= 1.5x TTLCache.get",
            rates["async"],
            rates["bare"],
            "lookups/s",
            1.5,
            baseline_name="cachetools TTLCache.get",
            notes=f"median of {rounds} interleaved rounds of {count:,} SIDs, CPU time; {before}",
        ),
        Goal(
            AREA,
            f"bytes per conversation (both directions) <= {MEMORY_GOAL:.0f} B",
            new,
            old,
            "B",
            old / MEMORY_GOAL,
            higher_is_better=False,
            baseline_name="TLRUCache of pydantic mappings",
            notes=(
                f"tracemalloc, {stored:,} conversations ({old_stored:,} for the old one); "
                f"the target is the cut from the old size to {MEMORY_GOAL:.0f} B"
            ),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    from .goals import markdown_table

    p = argparse.ArgumentParser(prog="python -m benchmarks.warm", description=__doc__)
    p.add_argument("--quick", action="store_true", help="CI smoke test: small and fast")
    args = p.parse_args(argv)
    goals = measure(args.quick)
    print(markdown_table(goals))
    for goal in goals:
        print(f"- {goal.name}: {goal.notes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
