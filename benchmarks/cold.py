"""Issue #16, item 1: the cold path under concurrency.

1,000 distinct cold SIDs resolved at once through one `AsyncCallSidResolver`, against an emulator in
another process (so that the server's work does not share the client's interpreter) answering every
request after `latency` seconds. At pool size `p` no client can send more than `p / latency`
requests per second: that ceiling is each rate's baseline. Each backend (httpx, and aiohttp through
httpx-aiohttp) runs at every pool size, the backends interleaved, and the median of the repeats is
kept. A lookup that raises or resolves to the wrong conversation is a failure: in quick mode (CI)
any failure, or more than 2 requests per lookup, raises.

Also measured: the sync client's watchdog (a bound on each attempt's total time). A shared thread
with a heap of deadlines against the thread per attempt it replaced, and against no watchdog, over
sequential loopback GETs, interleaved.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx

from benchmarks.goals import Goal
from callsid_resolver import (
    AsyncCallSidResolver,
    AsyncElevenLabsClient,
    ElevenLabsClient,
    MemoryCache,
)
from callsid_resolver import _concurrency as _client  # where the sync client's Watchdog is used
from callsid_resolver.testing import EmulatorProcess, newest_first, synthetic_conversations

AREA = "cold path"
API_KEY = "bench-key"
POOLS = (20, 50, 100, 200)
BACKENDS = ("httpx", "aiohttp")
# A cold lookup with the server-side filter: one filtered list, one GET (docs/protocol.md §4).
MAX_REQUESTS_PER_LOOKUP = 2


def measure(quick: bool) -> list[Goal]:
    """The item's goals: no failures at any pool size, the rate against pool/latency (httpx ≥ 0.7
    at every pool size, aiohttp ≥ 0.8 at pool 100), and the watchdog's cost per GET."""
    lookups, latency, pools, repeats = (
        (200, 0.05, (20, 100), 1) if quick else (1000, 0.05, POOLS, 2)
    )
    size = lookups * 2  # the synthetic history mixes web chats in; we need `lookups` phone calls
    history = newest_first(synthetic_conversations(size, seed=16))
    expected = {
        c["metadata"]["phone_call"]["call_sid"]: c["conversation_id"]
        for c in history
        if (c["metadata"].get("phone_call") or {}).get("call_sid")
    }
    sids = list(expected)[:lookups]
    if len(sids) < lookups:
        raise RuntimeError(f"the history holds {len(sids)} phone calls, {lookups} needed")
    rates: dict[tuple[str, int], list[float]] = {}
    failures: dict[tuple[str, int], int] = {}
    with EmulatorProcess(synthetic=size, seed=16) as emulator:
        emulator.remote.latency = latency
        for _ in range(repeats):
            for pool in pools:
                for backend in BACKENDS:
                    emulator.remote.reset_counts()
                    run = asyncio.run(_burst(emulator.base_url, backend, pool, sids, expected))
                    requests = emulator.remote.total_requests
                    key = (backend, pool)
                    failures[key] = failures.get(key, 0) + run["failed"]
                    rates.setdefault(key, []).append(requests / run["seconds"])
                    _check(quick, key, run, requests, lookups)
        emulator.remote.reset_counts()
        bare = asyncio.run(_bare_rate(emulator.base_url, 100, sids, expected))
        emulator.remote.latency = 0.0  # the watchdog's cost shows against a bare GET
        watchdog = _watchdog_costs(emulator.base_url, 100 if quick else 1000, 1 if quick else 5)
    goals = _goals(lookups, latency, pools, repeats, rates, failures)
    goals[-1] = replace(
        goals[-1],
        notes=f"{goals[-1].notes}; a bare aiohttp session sending the same requests 100 at a "
        f"time, no resolver: {bare:,.0f} req/s (what this machine's emulator and CPU allow)",
    )
    return [*goals, watchdog]


async def _burst(
    base_url: str, backend: Any, pool: int, sids: list[str], expected: dict[str, str]
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    async with AsyncElevenLabsClient(
        API_KEY, base_url=base_url, limits=limits, backend=backend
    ) as client:
        resolver = AsyncCallSidResolver(client, cache=MemoryCache())
        started = time.perf_counter()
        results = await asyncio.gather(*(resolver.resolve(s) for s in sids), return_exceptions=True)
        seconds = time.perf_counter() - started
    errors = [r for r in results if isinstance(r, BaseException)]
    wrong = sum(
        1
        for sid, r in zip(sids, results, strict=True)
        if not isinstance(r, BaseException) and r.conversation_id != expected[sid]
    )
    return {
        "seconds": seconds,
        "failed": len(errors) + wrong,
        "first_error": repr(errors[0])[:200] if errors else "",
    }


async def _bare_rate(base_url: str, width: int, sids: list[str], expected: dict[str, str]) -> float:
    """The requests of a cold lookup through the filter (docs/protocol.md §4), without the
    library: the rate the server and the machine allow at `width` requests in flight."""
    import aiohttp

    urls = []
    for sid in sids:
        urls.append(
            f"{base_url}/v1/convai/conversations?dynamic_variable_filter=system__call_sid:eq:{sid}"
        )
        urls.append(f"{base_url}/v1/convai/conversations/{expected[sid]}")
    headers = {"xi-api-key": API_KEY}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=width)) as session:

        async def one(url: str) -> None:
            async with session.get(url, headers=headers) as response:
                await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(one(u) for u in urls))
        return len(urls) / (time.perf_counter() - started)


def _check(quick: bool, key: tuple[str, int], run: dict[str, Any], requests: int, n: int) -> None:
    if not quick:
        return  # the full run records failures in its goals and goes on
    if run["failed"]:
        raise AssertionError(f"{key}: {run['failed']} of {n} lookups failed: {run['first_error']}")
    if requests > MAX_REQUESTS_PER_LOOKUP * n:
        raise AssertionError(f"{key}: {requests} requests for {n} cold lookups")


def _goals(
    lookups: int,
    latency: float,
    pools: tuple[int, ...],
    repeats: int,
    rates: dict[tuple[str, int], list[float]],
    failures: dict[tuple[str, int], int],
) -> list[Goal]:
    goals = []
    for backend in BACKENDS:
        attempted = lookups * repeats * len(pools)
        failed = sum(failures[(backend, p)] for p in pools)
        goals.append(
            Goal(
                AREA,
                f"{backend}: {lookups:,} distinct cold lookups at once, none fails "
                f"(pools {', '.join(map(str, pools))})",
                measured=attempted - failed,
                baseline=attempted,
                unit="lookups",
                target=1.0,
                baseline_name="lookups attempted",
                notes="failed per pool: "
                + ", ".join(f"{p}: {failures[(backend, p)]}" for p in pools),
            )
        )
    for pool in pools:
        goals.append(_rate("httpx", pool, latency, rates, 0.7))
    others = ", ".join(f"pool {p}: {_median(rates, 'aiohttp', p):,.0f} req/s" for p in pools)
    aiohttp = _rate("aiohttp", 100, latency, rates, 0.8)
    goals.append(replace(aiohttp, notes=f"{aiohttp.notes}; {others}"))
    return goals


def _rate(
    backend: str,
    pool: int,
    latency: float,
    rates: dict[tuple[str, int], list[float]],
    target: float,
) -> Goal:
    runs = rates[(backend, pool)]
    return Goal(
        AREA,
        f"{backend} at pool {pool}: requests/s vs pool/latency",
        measured=statistics.median(runs),
        baseline=pool / latency,
        unit="req/s",
        target=target,
        baseline_name=f"ceiling, {latency * 1000:g} ms latency",
        notes=f"median of {len(runs)}: " + ", ".join(f"{r:,.0f}" for r in runs),
    )


def _median(rates: dict[tuple[str, int], list[float]], backend: str, pool: int) -> float:
    return statistics.median(rates[(backend, pool)])


class _TimerWatchdog(_client.Watchdog):
    """The watchdog as it was before issue #16: a `threading.Timer` per attempt."""

    __slots__ = ("_timer",)

    def __init__(self, seconds: float) -> None:
        self._stream: Any = None
        self._cancelled = False
        self._timer = threading.Timer(max(seconds, 0.0), self._fire_alone)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        self._cancelled = True
        self._timer.cancel()

    def _fire_alone(self) -> None:
        if not self._cancelled:
            self._fire()


class _NoWatchdog(_client.Watchdog):
    __slots__ = ()

    def __init__(self, seconds: float) -> None:
        self._stream = None
        self._cancelled = False

    def cancel(self) -> None:
        pass


@contextmanager
def _watchdog(cls: type[_client.Watchdog]) -> Iterator[None]:
    saved = _client.Watchdog
    _client.Watchdog = cls  # type: ignore[misc]
    try:
        yield
    finally:
        _client.Watchdog = saved  # type: ignore[misc]


def _watchdog_costs(base_url: str, gets: int, repeats: int) -> Goal:
    """Seconds per sequential loopback GET with each watchdog; the goal: the shared thread at
    least as fast as a thread per attempt (its saving and the remaining cost go in the notes)."""
    variants: dict[str, type[_client.Watchdog]] = {
        "shared thread": _client.Watchdog,
        "thread per attempt": _TimerWatchdog,
        "none": _NoWatchdog,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    with ElevenLabsClient(API_KEY, base_url=base_url) as client:
        conversation_id = client.list_conversations(page_size=1).conversations[0].conversation_id
        for _ in range(repeats):
            for name, cls in variants.items():
                with _watchdog(cls):
                    started = time.perf_counter()
                    for _ in range(gets):
                        client.get_conversation(conversation_id)
                    times[name].append((time.perf_counter() - started) / gets)
    per_get = {name: statistics.median(t) for name, t in times.items()}
    return Goal(
        AREA,
        "sync GET with the shared watchdog thread vs a thread per attempt",
        measured=per_get["shared thread"] * 1e6,
        baseline=per_get["thread per attempt"] * 1e6,
        unit="µs/GET",
        target=1.0,
        higher_is_better=False,
        baseline_name="thread per attempt",
        notes=f"median of {repeats} x {gets} GETs; without a watchdog "
        f"{per_get['none'] * 1e6:,.0f} µs/GET, so the watchdog costs "
        f"{(per_get['shared thread'] - per_get['none']) * 1e6:,.0f} µs (shared) vs "
        f"{(per_get['thread per attempt'] - per_get['none']) * 1e6:,.0f} µs (per attempt)",
    )


if __name__ == "__main__":
    import sys

    from benchmarks.goals import markdown_table

    goals = measure("--quick" in sys.argv)
    print(markdown_table(goals))
    for g in goals:
        if g.notes:
            print(f"- {g.name}: {g.notes}")
