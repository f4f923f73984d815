"""`python -m benchmarks [--quick]`: round trips and time to resolve, ours against the SDK walk,
and sending into a live call, ours against a hand-held session.

Starts the emulator on loopback with a seeded synthetic history and a per-request latency
(default 50 ms, like a real API across the internet), measures each scenario at several depths
(the target call's position, newest first), and writes Markdown, JSON and an SVG plot. Ratios
are against the baseline measured in the same run. `--quick` is CI's smoke test: it checks that
the benchmark runs and that round-trip counts hold, never wall times.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from callsid_resolver.testing import EmulatorProcess, synthetic_conversations

from .observed import Count, as_rows, bounds_hold, measure_observed
from .report import BASELINE as BASELINE_NAME
from .report import markdown, svg_plot
from .scenarios import API_KEY, Bench, Result, memory_of_mappings
from .sending import measure_sending

REDIS_URL = "redis://127.0.0.1:6379/0"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="CI smoke test: small and fast")
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    p.add_argument("--depths", type=int, nargs="+", default=[1, 50, 250, 2_000])
    p.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--baseline-repeats", type=int, default=3)
    p.add_argument("--messages", type=int, default=5_000, help="per sending path")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.depths, args.latency = [1_000], [1, 50, 250], 0.002
        args.repeats, args.baseline_repeats, args.messages = 2, 1, 300

    runs: list[dict[str, Any]] = []
    for size in args.sizes:
        runs.append(run_size(size, [d for d in args.depths if d <= size], args))
    extras = {
        "bytes_per_cached_mapping": round(memory_of_mappings(10_000 if args.quick else 1_000_000))
    }
    report = {
        "settings": {
            "latency_s": args.latency,
            "repeats": args.repeats,
            "baseline_repeats": args.baseline_repeats,
            "machine": f"{platform.machine()}, {platform.python_implementation()} "
            f"{platform.python_version()}, {platform.system()}",
            "date": time.strftime("%Y-%m-%d"),
        },
        "runs": runs,
        # Request counts of live-call and SIP Call-ID lookups under both emulator profiles.
        "observed": as_rows(measure_observed()),
        # Raises (and the run fails) when a message is not delivered where it should be.
        "sending": [r.__dict__ for r in measure_sending(REDIS_URL, args.messages)],
        "extras": extras,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "latest.md").write_text(markdown(report))
    (args.out / "requests_and_time_by_depth.svg").write_text(svg_plot(report))
    sys.stdout.write(markdown(report))
    return check_round_trips(report)


def run_size(size: int, depths: list[int], args: argparse.Namespace) -> dict[str, Any]:
    # The same seed the emulator process uses: here only to pick the targets.
    history = synthetic_conversations(size, seed=size)
    newest_first = sorted(history, key=lambda c: -int(c["metadata"]["start_time_unix_secs"]))
    results: list[Result] = []
    # In its own process: a server sharing our interpreter would compete with the client for
    # the GIL, and the benchmark would measure that instead of the client.
    with EmulatorProcess(synthetic=size, seed=size) as server:
        server.remote.latency = args.latency
        bench = Bench(server.remote, server.base_url)
        for depth in depths:
            results += measure_depth(bench, depth, call_at_depth(newest_first, depth), args)
        results += measure_load(bench, newest_first, min(250, size))
        lookups_per_second = bench.warm_lookups_per_second(
            call_sid(call_at_depth(newest_first, min(250, size)))
        )
    return {
        "size": size,
        "results": [r.__dict__ | {"median": r.median, "p95": r.p95} for r in results],
        "warm_lookups_per_second": round(lookups_per_second),
    }


def measure_depth(
    bench: Bench, depth: int, target: dict[str, Any], args: argparse.Namespace
) -> list[Result]:
    sid, start = call_sid(target), int(target["metadata"]["start_time_unix_secs"])
    emulator, slow, fast = bench.emulator, args.baseline_repeats, args.repeats
    out = [bench.measure(BASELINE_NAME, depth, slow, lambda: bench.baseline(sid))]
    emulator.filter_mode = "support"
    out.append(
        bench.measure("ours: cold, server-side filter", depth, fast, lambda: bench.ours(sid))
    )
    emulator.filter_mode = "reject"
    deep = {"max_scan": 5_000}  # the default (1,000 listed) stops short of depth 2,000
    out.append(
        bench.measure(
            "ours: cold, filter unavailable (scan)", depth, slow, lambda: bench.ours(sid, deep)
        )
    )
    window: dict[str, Any] = {"started_after": start - 1, "started_before": start + 1}
    out.append(
        bench.measure(
            "ours: cold, scan with start-time hint", depth, fast, lambda: bench.ours(sid, **window)
        )
    )
    # The API as third parties report it (docs/protocol.md §12): a finished call costs the same.
    emulator.profile = "observed"
    out.append(
        bench.measure("observed: cold, server-side filter", depth, fast, lambda: bench.ours(sid))
    )
    emulator.filter_mode = "reject"
    out.append(
        bench.measure(
            "observed: cold, scan with start-time hint",
            depth,
            fast,
            lambda: bench.ours(sid, **window),
        )
    )
    emulator.profile = "documented"
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    bench.ours(sid, {"cache": _redis_cache(), "namespace": namespace})  # the first worker
    out.append(
        bench.measure(
            "ours: warm, Redis (another worker)",
            depth,
            fast,
            lambda: bench.warm_redis(sid, REDIS_URL, namespace),
        )
    )
    return out


def measure_load(bench: Bench, newest_first: list[dict[str, Any]], depth: int) -> list[Result]:
    sid = call_sid(call_at_depth(newest_first, depth))
    cache = _warm(bench, sid)
    distinct = [call_sid(c) for c in newest_first if c["metadata"].get("phone_call")][:1000]
    return [
        bench.measure(
            "ours: warm, in-memory cache", None, 1, lambda: bench.ours(sid, {"cache": cache})
        ),
        bench.measure(
            "ours: 1,000 concurrent lookups of one cold SID",
            depth,
            1,
            lambda: bench.concurrent([sid] * 1000),
        ),
        bench.measure(
            f"ours: {len(distinct):,} distinct cold SIDs at once",
            None,
            1,
            lambda: bench.concurrent(distinct),
        ),
    ]


def call_sid(conversation: dict[str, Any]) -> str:
    return str(conversation["metadata"]["phone_call"]["call_sid"])


def call_at_depth(newest_first: list[dict[str, Any]], depth: int) -> dict[str, Any]:
    """The phone call at (or, past web chats, just after) position `depth`, 1 = newest."""
    for conv in newest_first[depth - 1 :]:
        if (conv["metadata"].get("phone_call") or {}).get("call_sid"):
            return conv
    raise LookupError(f"no phone call at depth {depth} or after")


def bounds_hold_rows(rows: list[dict[str, Any]]) -> list[str]:
    return bounds_hold([Count(**row) for row in rows])


def _redis_cache() -> Any:
    from callsid_resolver import RedisCache

    return RedisCache(redis.Redis.from_url(REDIS_URL))


def _warm(bench: Bench, call_sid: str) -> Any:
    from callsid_resolver import MemoryCache

    cache = MemoryCache()
    bench.ours(call_sid, {"cache": cache})
    return cache


def check_round_trips(report: dict[str, Any]) -> int:
    """The claims the README makes, as exact request counts; exit 1 when one does not hold."""
    exact = {
        "ours: cold, server-side filter": 2,
        "observed: cold, server-side filter": 2,
        "ours: warm, Redis (another worker)": 0,
        "ours: warm, in-memory cache": 0,
        "ours: 1,000 concurrent lookups of one cold SID": 2,
    }
    failures = []
    for run in report["runs"]:
        for r in run["results"]:
            name, requests, depth = r["scenario"], r["requests"], r["depth"]
            wrong = exact.get(name, requests) != requests
            if name == BASELINE_NAME:
                wrong = requests < depth
            if wrong:
                failures.append(f"size {run['size']}: {name} at depth {depth} cost {requests}")
    failures += bounds_hold_rows(report.get("observed", []))
    for failure in failures:
        print(f"round-trip check failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


__all__ = ["API_KEY", "main"]
