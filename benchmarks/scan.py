"""Issue #16 item 3: the scan (filter unavailable) against the SDK walk, in the same run.

Goals:
- the cold scan at depth 250 (and 2,000) >= 10x faster than the official SDK's list + get walk;
- it never sends more requests than the walk (calls whose source fits the SID's form first);
- under a workspace concurrency limit of 10, a depth-2,000 scan finishes with <= 2% of its
  requests answered 429 (the read window halves on a 429, as TCP does).

The emulator runs in its own process (`EmulatorProcess`) with 50 ms per request (2 ms in quick
mode), and the server-side filter answers 422, so that every lookup scans. Baseline and scan are
measured interleaved, and medians reported. Quick mode raises only when a request-count or
correctness bound breaks, never on a wall time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from callsid_resolver.testing import EmulatorProcess, synthetic_conversations

from .goals import Goal
from .scenarios import Bench

AREA = "scan"
TARGET = 10.0  # x the SDK walk (issue #16 item 3)
LIMIT = 10  # the workspace concurrency limit of the 429 scenario
MAX_429_SHARE = 0.02
DEEP = {"max_scan": 5_000}  # the default (1,000 listed) stops short of depth 2,000


def measure(quick: bool) -> list[Goal]:
    """The scan's goals; raises only when a request count or an answer is wrong."""
    size, depths = (600, [250]) if quick else (2_500, [250, 2_000])
    latency = 0.002 if quick else 0.05
    history = synthetic_conversations(size, seed=size)  # the emulator process's, to pick targets
    newest_first = sorted(history, key=lambda c: -int(c["metadata"]["start_time_unix_secs"]))
    goals: list[Goal] = []
    with EmulatorProcess(synthetic=size, seed=size) as server:
        remote = server.remote
        remote.configure(latency=latency, filter_mode="reject")
        bench = Bench(remote, server.base_url)
        for depth in depths:
            goals += _versus_walk(bench, newest_first, depth, quick)
        goals.append(_sip_reads(bench, newest_first, quick))
        goals.append(_under_limit(bench, server.base_url, newest_first, max(depths), quick))
    return goals


def _versus_walk(
    bench: Bench, newest_first: list[dict[str, Any]], depth: int, quick: bool
) -> list[Goal]:
    target = _call_at_depth(newest_first, depth, "twilio")
    sid = _sid(target)
    walks, scans = (1, 2) if quick else ((3, 5) if depth <= 250 else (1, 3))
    walk_s: list[float] = []
    scan_s: list[float] = []
    walk_requests = scan_requests = 0
    for i in range(max(walks, scans)):  # interleaved: both see the same machine load
        if i < walks:
            seconds, walk_requests = _timed(bench, lambda: bench.baseline(sid))
            walk_s.append(seconds)
        if i < scans:
            seconds, scan_requests = _timed(bench, lambda: _check(bench.ours(sid, DEEP), target))
            scan_s.append(seconds)
    if scan_requests > walk_requests:
        raise AssertionError(
            f"depth {depth}: the scan sent {scan_requests} requests, the walk {walk_requests}"
        )
    name = f"cold scan at depth {depth:,} >= {TARGET:g}x faster than the SDK walk"
    notes = f"walk {walk_requests} requests, scan {scan_requests}; medians of {walks}/{scans}"
    return [
        Goal(AREA, name, statistics.median(scan_s), statistics.median(walk_s), "s", TARGET,
             higher_is_better=False, baseline_name="SDK list+get walk", notes=notes),
        Goal(AREA, f"requests of the scan at depth {depth:,} <= the SDK walk's", scan_requests,
             walk_requests, "requests", 1.0, higher_is_better=False,
             baseline_name="SDK list+get walk"),
    ]  # fmt: skip


def _sip_reads(bench: Bench, newest_first: list[dict[str, Any]], quick: bool) -> Goal:
    """A SIP call's id: the SIP trunk's calls are read first, Twilio's only if none shows it."""
    target = _call_at_depth(newest_first, 250, "sip_trunk")
    sid = _sid(target)
    _, walk_requests = _timed(bench, lambda: bench.baseline(sid))
    _, scan_requests = _timed(bench, lambda: _check(bench.ours(sid, DEEP), target))
    if scan_requests > walk_requests:
        raise AssertionError(f"SIP: the scan sent {scan_requests}, the walk {walk_requests}")
    return Goal(
        AREA,
        "requests of a SIP call's scan at depth 250 <= the SDK walk's",
        scan_requests,
        walk_requests,
        "requests",
        1.0,
        higher_is_better=False,
        baseline_name="SDK list+get walk",
        notes="SIP trunk calls checked first; Twilio calls after, never skipped",
    )


def _under_limit(
    bench: Bench, base_url: str, newest_first: list[dict[str, Any]], depth: int, quick: bool
) -> Goal:
    """The deep scan against a workspace that answers 429 `concurrent_limit_exceeded` past
    `LIMIT` requests in flight (typed bodies, as the observed profile sends them)."""
    target = _call_at_depth(newest_first, depth, "twilio")
    sid = _sid(target)
    remote = bench.emulator
    remote.configure(profile="observed", filter_mode="reject", concurrency_limit=LIMIT)
    shares: list[float] = []
    seconds: list[float] = []
    try:
        for _ in range(1 if quick else 3):
            took, requests = _timed(bench, lambda: _check(bench.ours(sid, DEEP), target))
            counts = httpx.get(f"{base_url}/_emulator/counts").json()
            refused = int(counts["statuses"].get("429", 0))
            if counts["peak_in_flight"] > LIMIT:
                raise AssertionError(f"{counts['peak_in_flight']} in flight past the limit")
            shares.append(refused / requests)
            seconds.append(took)
    finally:
        remote.configure(profile="documented", filter_mode="reject", concurrency_limit=None)
    share = statistics.median(shares)
    answered = 100.0 * (1 - share)
    return Goal(
        AREA,
        f"depth-{depth:,} scan under a limit of {LIMIT} in flight: <= 2% answered 429",
        answered,
        100.0 * (1 - MAX_429_SHARE),
        "% answered without 429",
        1.0,
        baseline_name="the issue's bound",
        notes=f"429 share {share:.2%} (runs: {', '.join(f'{s:.2%}' for s in shares)}); "
        f"median {statistics.median(seconds):.2f} s",
    )


def _timed(bench: Bench, run: Callable[[], Any]) -> tuple[float, int]:
    bench.emulator.reset_counts()
    started = time.perf_counter()
    run()
    return time.perf_counter() - started, bench.emulator.total_requests


def _check(resolution: Any, target: dict[str, Any]) -> None:
    if resolution.conversation_id != target["conversation_id"]:
        raise AssertionError(f"resolved {resolution.conversation_id}, not the target")


def _sid(conversation: dict[str, Any]) -> str:
    return str(conversation["metadata"]["phone_call"]["call_sid"])


def _call_at_depth(newest_first: list[dict[str, Any]], depth: int, source: str) -> dict[str, Any]:
    """The call of `source` at (or just after) position `depth`, 1 = newest."""
    for conv in newest_first[depth - 1 :]:
        if conv["metadata"].get("conversation_initiation_source") == source:
            return conv
    raise LookupError(f"no {source} call at depth {depth} or after")


if __name__ == "__main__":
    import sys

    from .goals import markdown_table

    sys.stdout.write(markdown_table(measure("--quick" in sys.argv)) + "\n")
