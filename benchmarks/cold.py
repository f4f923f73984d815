"""Issue #16, item 1: the cold path under concurrency.

1,000 distinct cold SIDs resolved at once through one `AsyncCallSidResolver`, each a list
filtered by `system__call_sid` and a GET (docs/protocol.md §4), answered after `LATENCY` seconds.
At pool size `p` no client can send more than `p / LATENCY` requests per second: that is each
rate's baseline. Each backend (httpx, and aiohttp through httpx-aiohttp) runs at every pool size,
the backends interleaved, and the median of the repeats is kept. A lookup that raises or resolves
to the wrong conversation is a failure: in quick mode (CI) any failure, or more than 2 requests
per lookup, raises.

The server is not the emulator: its Python HTTP stack was the bound before the client was (on
2026-11-30 it added about 45 ms to every request, and its CPU capped the rate at a few hundred
requests per second), so the rates measured the emulator. The emulator answers every request of
the run once, with no latency, through a recording transport; a lean replay server in a process
of its own (`benchmarks/loopback.py`) then serves those bytes after the latency. Its ceiling at
each pool size, measured with a trivial load generator (wrk when installed, else a bare aiohttp
client), is the second denominator: each rate is also given against min(pool / latency,
ceiling). The client is CPU-bound well before either: a bare aiohttp session in this process,
sending the same requests with no library at the same width, shows what one event loop on this
machine sends at all, and each rate is also given as a share of it. The full run also sends the
pool-100 burst to the emulator, for comparison.

`python -m benchmarks.cold [--quick] [--compare-emulator]`: the latter runs every pool size and
backend against the emulator too (the before/after table of docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from benchmarks.goals import Goal
from benchmarks.loopback import LoopbackServer, Recorder
from benchmarks.watchdog import watchdog_costs
from callsid_resolver import AsyncCallSidResolver, AsyncElevenLabsClient, MemoryCache
from callsid_resolver.testing import EmulatorProcess, newest_first, synthetic_conversations

AREA = "cold path"
API_KEY = "bench-key"
LATENCY = 0.05
POOLS = (20, 50, 100, 200)
BACKENDS = ("httpx", "aiohttp")
# A cold lookup with the server-side filter: one filtered list, one GET (docs/protocol.md §4).
MAX_REQUESTS_PER_LOOKUP = 2
RECORDING_WIDTH = 100  # requests in flight while recording the emulator's replies


@dataclass
class Grid:
    """Rates, failures and client CPU per (backend, pool) over the repeats."""

    rates: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    failures: dict[tuple[str, int], int] = field(default_factory=dict)
    cpu: dict[tuple[str, int], list[float]] = field(default_factory=dict)  # client s/request

    def median(self, backend: str, pool: int) -> float:
        return statistics.median(self.rates[(backend, pool)])


def measure(quick: bool) -> list[Goal]:
    """The item's goals: no failures at any pool size, the rate against pool/latency (httpx ≥ 0.7
    at every pool size, aiohttp ≥ 0.8 at pool 100), and the watchdog's cost per GET."""
    lookups, pools, repeats = (200, (20, 100), 1) if quick else (1000, POOLS, 2)
    sids, expected, size = _history(lookups)
    emulated: dict[str, float] = {}
    with EmulatorProcess(synthetic=size, seed=16) as emulator:
        replies = asyncio.run(_record(emulator.base_url, sids, expected))
        if not quick:
            emulator.remote.latency = LATENCY
            count = _emulator_counter(emulator)
            emulated = _on_emulator(emulator.base_url, count, sids, expected)
            emulated["ceiling"], _ = server_ceiling(emulator.base_url, _get_target(replies), 100)
    targets = list(replies)
    with LoopbackServer(replies, latency=LATENCY) as server:
        target, seconds = _get_target(replies), 1 if quick else 2
        ceilings = {p: server_ceiling(server.base_url, target, p, seconds) for p in pools}
        grid = run_grid(server.base_url, server.take_count, pools, repeats, sids, expected, quick)
        bare = {p: asyncio.run(_bare_rate(server.base_url, p, targets)) for p in pools}
    with LoopbackServer(replies, latency=0.0) as server:
        conversation_id = _get_target(replies).rsplit("/", 1)[1]
        gets, rounds = (100, 1) if quick else (300, 3)
        watchdog = watchdog_costs(server.base_url, API_KEY, conversation_id, gets, rounds)
    goals = _goals(lookups, pools, repeats, grid, ceilings, bare)
    if emulated:
        at = next(i for i, g in enumerate(goals) if g.name.startswith("httpx at pool 100"))
        goals[at] = replace(
            goals[at],
            notes=f"{goals[at].notes}; the same burst served by the emulator: "
            f"{emulated['httpx']:,.0f} req/s (aiohttp {emulated['aiohttp']:,.0f}), the emulator's "
            f"ceiling at 100 connections {emulated['ceiling']:,.0f} req/s",
        )
    return [*goals, watchdog]


def _history(lookups: int) -> tuple[list[str], dict[str, str], int]:
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
    return sids, expected, size


async def _record(
    base_url: str, sids: list[str], expected: dict[str, str]
) -> dict[str, tuple[int, dict[str, str], str]]:
    """Every reply the emulator gives to the burst's requests, by request target."""
    recorder = Recorder(httpx.AsyncHTTPTransport())
    async with AsyncElevenLabsClient(
        API_KEY, base_url=base_url, transport=recorder, max_in_flight=RECORDING_WIDTH
    ) as client:
        resolver = AsyncCallSidResolver(client, cache=MemoryCache())
        results = await asyncio.gather(*(resolver.resolve(s) for s in sids))
    wrong = [s for s, r in zip(sids, results, strict=True) if r.conversation_id != expected[s]]
    if wrong:
        raise RuntimeError(f"the emulator resolved {len(wrong)} SIDs wrongly while recording")
    return recorder.replies


def _get_target(replies: dict[str, tuple[int, dict[str, str], str]]) -> str:
    """A recorded `GET /v1/convai/conversations/{id}` (the load generator's one target)."""
    return next(t for t in replies if t.count("/") == 4 and "?" not in t)


def _emulator_counter(emulator: EmulatorProcess) -> Callable[[], int]:
    def take() -> int:
        served = emulator.remote.total_requests
        emulator.remote.reset_counts()
        return served

    take()
    return take


def _on_emulator(
    base_url: str, count: Callable[[], int], sids: list[str], expected: dict[str, str]
) -> dict[str, float]:
    rates = {}
    for backend in BACKENDS:
        run = asyncio.run(_burst(base_url, backend, 100, sids, expected))
        rates[backend] = count() / run["seconds"]
    return rates


def run_grid(
    base_url: str,
    count: Callable[[], int],
    pools: tuple[int, ...],
    repeats: int,
    sids: list[str],
    expected: dict[str, str],
    quick: bool,
) -> Grid:
    """Every backend at every pool size, `repeats` times, the backends interleaved."""
    grid = Grid()
    count()  # from zero: a ceiling measured before counts nothing here
    for _ in range(repeats):
        for pool in pools:
            for backend in BACKENDS:
                run = asyncio.run(_burst(base_url, backend, pool, sids, expected))
                requests = count()
                key = (backend, pool)
                grid.failures[key] = grid.failures.get(key, 0) + run["failed"]
                grid.rates.setdefault(key, []).append(requests / run["seconds"])
                grid.cpu.setdefault(key, []).append(run["cpu"] / max(requests, 1))
                _check(quick, key, run, requests, len(sids))
    return grid


async def _burst(
    base_url: str, backend: Any, pool: int, sids: list[str], expected: dict[str, str]
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    async with AsyncElevenLabsClient(
        API_KEY, base_url=base_url, limits=limits, backend=backend
    ) as client:
        resolver = AsyncCallSidResolver(client, cache=MemoryCache())
        started, cpu = time.perf_counter(), time.process_time()
        results = await asyncio.gather(*(resolver.resolve(s) for s in sids), return_exceptions=True)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    errors = [r for r in results if isinstance(r, BaseException)]
    wrong = sum(
        1
        for sid, r in zip(sids, results, strict=True)
        if not isinstance(r, BaseException) and r.conversation_id != expected[sid]
    )
    return {
        "seconds": seconds,
        "cpu": cpu,
        "failed": len(errors) + wrong,
        "first_error": repr(errors[0])[:200] if errors else "",
    }


def server_ceiling(base_url: str, target: str, width: int, seconds: int = 2) -> tuple[float, str]:
    """Requests/s the server at `base_url` answers with `width` requests in flight, all to
    `target`, and the tool that measured it: wrk (C, one thread) when installed, else a bare
    aiohttp client in this process (then a lower bound: the client's CPU counts too)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return asyncio.run(_bare_rate(base_url, width, [target] * width * 20)), "aiohttp"
    command = [wrk, "-t1", f"-c{width}", f"-d{seconds}s", "-H", f"xi-api-key: {API_KEY}"]
    # A fixed command and a loopback URL of our own: nothing untrusted reaches it.
    out = subprocess.run(  # noqa: S603
        [*command, base_url + target], capture_output=True, text=True, check=True
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"the load generator got errors from {target}: {out[-300:]}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"no rate in wrk's output: {out[-300:]}")
    return float(found[1]), "wrk"


async def _bare_rate(base_url: str, width: int, targets: list[str]) -> float:
    """The requests of the run, without the library: the rate the server and this process's CPU
    allow at `width` requests in flight."""
    import aiohttp

    headers = {"xi-api-key": API_KEY}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=width)) as session:

        async def one(target: str) -> None:
            async with session.get(base_url + target, headers=headers) as response:
                await response.read()
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one(t) for t in targets))
        return len(targets) / (time.perf_counter() - started)


def _check(quick: bool, key: tuple[str, int], run: dict[str, Any], requests: int, n: int) -> None:
    if not quick:
        return  # the full run records failures in its goals and goes on
    if run["failed"]:
        raise AssertionError(f"{key}: {run['failed']} of {n} lookups failed: {run['first_error']}")
    if requests > MAX_REQUESTS_PER_LOOKUP * n:
        raise AssertionError(f"{key}: {requests} requests for {n} cold lookups")


def _goals(
    lookups: int,
    pools: tuple[int, ...],
    repeats: int,
    grid: Grid,
    ceilings: dict[int, tuple[float, str]],
    bare: dict[int, float],
) -> list[Goal]:
    goals = []
    for backend in BACKENDS:
        attempted = lookups * repeats * len(pools)
        failed = sum(grid.failures[(backend, p)] for p in pools)
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
                + ", ".join(f"{p}: {grid.failures[(backend, p)]}" for p in pools),
            )
        )
    for pool in pools:
        goals.append(_rate("httpx", pool, grid, ceilings[pool], bare[pool], 0.7))
    others = ", ".join(f"pool {p}: {grid.median('aiohttp', p):,.0f} req/s" for p in pools)
    aiohttp = _rate("aiohttp", 100, grid, ceilings[100], bare[100], 0.8)
    goals.append(replace(aiohttp, notes=f"{aiohttp.notes}; {others}"))
    return goals


def _rate(
    backend: str,
    pool: int,
    grid: Grid,
    ceiling: tuple[float, str],
    bare: float,
    target: float,
) -> Goal:
    runs, measured = grid.rates[(backend, pool)], grid.median(backend, pool)
    reachable = min(pool / LATENCY, ceiling[0])
    cpu = statistics.median(grid.cpu[(backend, pool)])
    return Goal(
        AREA,
        f"{backend} at pool {pool}: requests/s vs pool/latency",
        measured=measured,
        baseline=pool / LATENCY,
        unit="req/s",
        target=target,
        baseline_name=f"ceiling, {LATENCY * 1000:g} ms latency",
        notes=f"median of {len(runs)}: "
        + ", ".join(f"{r:,.0f}" for r in runs)
        + f"; the replay server's ceiling at {pool} connections ({ceiling[1]}): "
        f"{ceiling[0]:,.0f} req/s, so {measured / reachable:.2f}x of min(pool/latency, ceiling)"
        f"; client CPU {cpu * 1e6:,.0f} µs/request ({measured * cpu:.0%} of a core)"
        f"; a bare aiohttp session in this process (no library, the same requests, {pool} at a "
        f"time): {bare:,.0f} req/s, {bare / (pool / LATENCY):.2f}x of pool/latency, of which "
        f"this is {measured / bare:.2f}x",
    )


def main(argv: list[str]) -> None:
    from benchmarks.goals import markdown_table

    if "--compare-emulator" in argv:
        compare_emulator()
        return
    goals = measure("--quick" in argv)
    print(markdown_table(goals))
    for g in goals:
        if g.notes:
            print(f"- {g.name}: {g.notes}")


def compare_emulator() -> None:
    """One run, every pool size and backend, served by the emulator then by the replay server:
    req/s, ratio to pool/latency, failures and client CPU per request, as a Markdown table."""
    sids, expected, size = _history(1000)
    with EmulatorProcess(synthetic=size, seed=16) as emulator:
        replies = asyncio.run(_record(emulator.base_url, sids, expected))
        emulator.remote.latency = LATENCY
        before = run_grid(
            emulator.base_url, _emulator_counter(emulator), POOLS, 1, sids, expected, False
        )
        emulator_ceiling = server_ceiling(emulator.base_url, _get_target(replies), 100)
    with LoopbackServer(replies, latency=LATENCY) as server:
        ceilings = {p: server_ceiling(server.base_url, _get_target(replies), p) for p in POOLS}
        after = run_grid(server.base_url, server.take_count, POOLS, 1, sids, expected, False)
    rate, tool = emulator_ceiling
    print(f"the emulator's ceiling at 100 connections ({tool}): {rate:,.0f} req/s")
    print(
        "| backend | pool | server | req/s | vs pool/latency | vs min(pool/latency, ceiling) "
        "| failures | client µs/request |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for backend in BACKENDS:
        for pool in POOLS:
            for name, grid, ceiling in (
                ("emulator", before, None),
                ("replay", after, ceilings[pool]),
            ):
                rate = grid.median(backend, pool)
                bound = pool / LATENCY if ceiling is None else min(pool / LATENCY, ceiling[0])
                print(
                    f"| {backend} | {pool} | {name} | {rate:,.0f} | {rate / (pool / LATENCY):.2f} "
                    f"| {rate / bound:.2f} | {grid.failures[(backend, pool)]} "
                    f"| {statistics.median(grid.cpu[(backend, pool)]) * 1e6:,.0f} |"
                )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
