"""What is measured: each scenario returns the HTTP requests it cost (counted by the emulator,
exact) and its wall time. Every cold scenario starts from a fresh client, resolver and cache.

A scenario that raises is recorded (its error, and the runs it finished) and the next one runs:
one failure must not cost the rest of a long run."""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis

from callsid_resolver import (
    AsyncCallSidResolver,
    AsyncElevenLabsClient,
    CachedMapping,
    CallSidResolver,
    ElevenLabsClient,
    MemoryCache,
    NullCache,
    RedisCache,
)
from callsid_resolver.testing import RemoteEmulator

API_KEY = "bench-key"


@dataclass
class Result:
    scenario: str
    depth: int | None
    requests: int
    seconds: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else math.nan

    @property
    def p95(self) -> float:
        ordered = sorted(self.seconds)
        if not ordered:
            return math.nan
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    def as_dict(self) -> dict[str, Any]:
        """For JSON: a scenario that failed before its first run has no times (null)."""
        times = {"median": self.median, "p95": self.p95} if self.seconds else {}
        return self.__dict__ | {"median": None, "p95": None} | times


class Bench:
    """One emulator with one history; the scenarios run against its loopback server."""

    def __init__(
        self,
        emulator: RemoteEmulator,
        base_url: str,
        on_result: Callable[[Result], None] = lambda _: None,
    ) -> None:
        self.emulator = emulator
        self.base_url = base_url
        self.on_result = on_result  # the runner saves each result as it comes

    def measure(self, name: str, depth: int | None, repeats: int, run: Callable[[], Any]) -> Result:
        """`repeats` runs of one scenario; an exception ends the scenario, not the benchmark."""
        result = Result(name, depth, requests=0)
        try:
            for _ in range(repeats):
                self.emulator.reset_counts()
                started = time.perf_counter()
                run()
                result.seconds.append(time.perf_counter() - started)
                requests = self.emulator.total_requests
                if result.requests and requests != result.requests:
                    result.extra["requests_varied"] = True
                result.requests = max(result.requests, requests)
        except Exception as exc:  # recorded with the runs it finished; the next scenario runs
            result.error = repr(exc)[:300]
            result.extra["failed_after_s"] = round(time.perf_counter() - started, 3)
            with contextlib.suppress(Exception):  # what the failed run cost, if still known
                result.requests = max(result.requests, self.emulator.total_requests)
        self.on_result(result)
        return result

    def record(self, result: Result) -> Result:
        """A result computed rather than run (see `estimated_walk`), saved like a measured one."""
        self.on_result(result)
        return result

    def baseline(self, call_sid: str) -> None:
        """What users write today: the SDK's list + get, newest first, one at a time."""
        from elevenlabs import ElevenLabs

        with httpx.Client() as http:  # the SDK does not close a client it made itself
            self._walk(
                ElevenLabs(api_key=API_KEY, base_url=self.base_url, httpx_client=http), call_sid
            )

    @staticmethod
    def _walk(sdk: Any, call_sid: str) -> None:
        cursor: str | None = None
        while True:
            page = sdk.conversational_ai.conversations.list(cursor=cursor, page_size=100)
            for summary in page.conversations:
                conv = sdk.conversational_ai.conversations.get(summary.conversation_id)
                phone = conv.metadata.phone_call
                if phone is not None and getattr(phone, "call_sid", None) == call_sid:
                    return
            if not page.has_more or not page.next_cursor:
                raise LookupError(call_sid)
            cursor = page.next_cursor

    def ours(self, call_sid: str, options: dict[str, Any] | None = None, **hints: Any) -> Any:
        """A cold resolver (fresh client and memory cache unless `options` says otherwise)."""
        options = {"cache": MemoryCache()} | (options or {})
        with ElevenLabsClient(API_KEY, base_url=self.base_url) as client:
            return CallSidResolver(client, **options).resolve(call_sid, **hints)

    def warm_lookups_per_second(self, call_sid: str, n: int = 20_000) -> float:
        with ElevenLabsClient(API_KEY, base_url=self.base_url) as client:
            resolver = CallSidResolver(client)
            resolver.resolve(call_sid)
            started = time.perf_counter()
            for _ in range(n):
                resolver.resolve(call_sid)
            return n / (time.perf_counter() - started)

    def warm_redis(self, call_sid: str, redis_url: str, namespace: str) -> None:
        """A second worker's lookup: another resolver already put the mapping in Redis."""
        client = redis.Redis.from_url(redis_url)
        try:
            self.ours(call_sid, {"cache": RedisCache(client), "namespace": namespace})
        finally:
            client.close()

    def concurrent(self, call_sids: list[str]) -> dict[str, Any]:
        """All lookups at once through one async resolver (single flight, pooled connections).

        Every lookup runs to its end; if any failed, the error says how many and of which kinds.
        """

        async def go() -> list[Any]:
            async with AsyncElevenLabsClient(API_KEY, base_url=self.base_url) as client:
                resolver = AsyncCallSidResolver(client, cache=NullCache())
                lookups = (resolver.resolve(s) for s in call_sids)
                return await asyncio.gather(*lookups, return_exceptions=True)

        results = asyncio.run(go())
        failed = Counter(type(r).__name__ for r in results if isinstance(r, BaseException))
        if failed:
            kinds = ", ".join(f"{n} {kind}" for kind, n in failed.most_common())
            raise RuntimeError(f"{failed.total()} of {len(call_sids)} lookups failed: {kinds}")
        return {"sources": sorted({r.source for r in results})}


def walk_requests(position: int, page_size: int = 100) -> int:
    """What the SDK walk costs to reach the conversation at `position` (1 = newest): one GET per
    conversation up to it, one list per page. The runner checks it against every walk it runs."""
    return position + -(-position // page_size)


def estimated_walk(walked: Result, depth: int, position: int) -> Result:
    """The SDK walk at `depth`, from a walk measured in the same run: its cost is one request
    after another, so time per request carries over (at 50 ms: 55.4 ms per request at depth 250,
    55.2 at 2,000, measured), and running the deep walk itself would take minutes."""
    per_request = walked.median / walked.requests
    requests = walk_requests(position)
    extra = {"estimated_from_depth": walked.depth, "seconds_per_request": per_request}
    return Result(walked.scenario, depth, requests, [per_request * requests], extra)


def memory_of_mappings(count: int) -> float:
    """Bytes per entry of a MemoryCache holding `count` SID mappings (tracemalloc)."""
    cache = MemoryCache(maxsize=count)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    batch: dict[str, CachedMapping] = {}
    for i in range(count):
        sid = f"CA{i:032x}"
        batch[f"callsid-resolver:v1:sid:{sid}"] = CachedMapping(
            call_sid=sid, conversation_id=f"conv_{i:028d}", agent_id="agent_bench"
        )
        if len(batch) == 10_000:
            cache.set_many(batch)
            batch = {}
    cache.set_many(batch)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(cache) == count
    return used / count
