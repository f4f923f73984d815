"""Markdown table and a dependency-free SVG plot of a benchmark report."""

from __future__ import annotations

import math
from typing import Any

from .goals import goal_from_dict, markdown_table
from .mcp import markdown as mcp_markdown
from .sending import markdown as sending_markdown

BASELINE = "baseline: SDK list+get walk"


DOCS_INTRO = """\
# Benchmarks

How many HTTP requests, and how long, to turn a call SID into its conversation: this library
against what users write today with the official SDK (`conversations.list` + `conversations.get`,
newest first, until `metadata.phone_call.call_sid` matches), in the same run, on the emulator in
its own process with 50 ms per request, like a real API across the internet. Then how fast
messages reach a live call: through the `Sender`, and through the `RedisRouter` to a session
another process holds, against a hand-held `ConversationSession`. First, the performance goals
of issue #16, each against a baseline measured in the same run.

Reproduce: `python -m benchmarks --docs docs/benchmarks.md` (the full run; its time per
section closes the page; `--only AREA` runs one area or section, repeatable; `--quick` is CI's
smoke test of the round-trip counts, and fails only when a count or an area's check breaks).
Results land in `benchmarks/results/` as Markdown, JSON and SVG, rewritten after every
scenario: a run stopped early leaves what it measured. A scenario that fails is recorded with
its error and the run goes on.

![requests and time by depth](assets/benchmarks.svg)

Reading the tables:

- a goal's *ratio* is measured / baseline (baseline / measured where lower is better), so a
  ratio at or above the target is *met*; *failed* means the measurement itself raised.
- *depth* is the call's position in the history, newest first (1 = the newest call). The
  history holds 100,000 conversations: runs at 1,000, 10,000 and 100,000 measured the same at
  every depth (on 2026-11-25, the depth-250 walk took 13.94, 13.97 and 14.02 s, the scan 2.17,
  2.13 and 2.31 s), so the smaller sizes are left to `--sizes`.
- *cold* scenarios start from a fresh client, resolver and cache each run, so a rejected filter
  costs its 422 every run; a long-lived resolver pays it once.
- the SDK walk's cost is one request after another, so the walks deeper than 250 are estimated
  from the depth-250 walk of the same run (its time per request times the walk's exact request
  count, which is checked against every walk that runs); a measured walk at depth 2,000 took
  111.7 s where the estimate from the depth-250 walk said 112.1 s.
- the generated histories hold no live call, so the live step (one list of `in-progress` calls)
  is pure overhead here; for the tool-during-a-call case it is the step that answers (see
  [Documented and observed API](#documented-and-observed-api)).
- *observed* rows run against the emulator's observed profile (the API as third parties
  report it): a finished call costs what it costs under the documented one.
- web-widget chats (about 20% of the history) are never read, which is why the scan needs fewer
  reads than the walk; reads started while the matching one was in flight are counted too.
- the distinct cold SIDs at once are bounded by the client's connection pool and the latency.
- *cold path* goals (`benchmarks/cold.py`): the emulator is not the server there. It answers the
  run's requests once, with no latency, through a recording transport; a lean replay server
  (`benchmarks/loopback.py`: an asyncio Protocol that finds the request line and the header
  block's end, nothing more) then serves those same bytes after the 50 ms, as a non-blocking
  delay, in a process of its own, so that the server's CPU is not what is measured. Each rate is
  given against pool/latency (the goal) and, in its notes, against min(pool/latency, the replay
  server's ceiling at that pool size), the ceiling measured by wrk (one thread) when installed,
  else by a bare aiohttp client in the benchmark's process (then a lower bound). The notes also
  give the client's CPU per request (its process time over the burst) and the rate of a bare
  aiohttp session in the benchmark's process, sending the same requests at the same width with
  no library: what one event loop on this machine sends at all. The client is CPU-bound from
  pool 50 on, so that rate, not pool/latency, is the bound at pools 100 and 200. These runs share
  2 cores with whatever else the machine runs; `python -m benchmarks.cold --compare-emulator`
  prints every pool size and backend served by the emulator and by the replay server, from one
  run.
- sending: *one at a time* awaits each send before the next (latency); *burst* starts them all
  at once (throughput). Through the router a message makes three hops (this process → Redis →
  worker B → the server, and the acknowledgement back).

"""


def docs_page(report: dict[str, Any]) -> str:
    """docs/benchmarks.md: what is measured and how to read it, then the run's report."""
    body = markdown(report).removeprefix("# Benchmark results\n\n")
    return DOCS_INTRO + body


def markdown(report: dict[str, Any]) -> str:
    """The whole report; any part may be missing (a run stopped early, or `--only`)."""
    s = report["settings"]
    lines = [
        "# Benchmark results",
        "",
        f"{s['date']}, {s['machine']}; emulator on loopback with {s['latency_s'] * 1000:g} ms per "
        f"request; {s['repeats']} runs per scenario ({s['baseline_repeats']} for the slow ones, "
        f"{s.get('deep_repeats', s['baseline_repeats'])} from depth 100 on)"
        + ("; quick mode (CI's smoke test, not a measurement)." if s.get("quick") else "."),
        "Requests are exact (counted by the emulator); times are wall-clock median and p95; "
        "ratios are against the baseline at the same depth in the same run.",
        "",
    ]
    if not report.get("finished", True):
        lines += ["**This run did not finish: what follows is what it measured.**", ""]
    lines += goals_markdown(report)
    lines += failures_markdown(report)
    for run in report.get("runs", []):
        lines += run_markdown(run)
    if report.get("observed"):
        lines += observed_markdown(report["observed"])
    if report.get("sending"):
        lines += sending_markdown(report["sending"])
    if report.get("mcp"):
        lines += mcp_markdown(report["mcp"])
    per_mapping = report.get("extras", {}).get("bytes_per_cached_mapping")
    if per_mapping is not None:
        lines += [
            f"MemoryCache: {per_mapping:,} bytes per cached mapping, one direction (tracemalloc).",
            "",
        ]
    if report.get("timings"):
        lines += ["## Time per section", "", "| section | seconds |", "|---|---:|"]
        lines += [f"| {name} | {sec:,.1f} |" for name, sec in report["timings"].items()]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def goals_markdown(report: dict[str, Any]) -> list[str]:
    goals = [goal_from_dict(g) for g in report.get("goals", [])]
    absent = report.get("absent_areas", [])
    if not goals and not absent:
        return []
    lines = ["## Goals (issue #16)", ""]
    if goals:
        lines += [markdown_table(goals), ""]
    lines += [f"- {g.area}, {g.name}: {g.notes}" for g in goals if g.notes]
    if any(g.notes for g in goals):
        lines.append("")
    if absent:
        lines += [f"Not measured (no module yet): {', '.join(absent)}.", ""]
    return lines


def failures_markdown(report: dict[str, Any]) -> list[str]:
    rows = [(f["scenario"], f["error"]) for f in report.get("failures", [])]
    rows += [
        (f"{run['size']:,} conversations: {r['scenario']} (depth {r['depth']})", r["error"])
        for run in report.get("runs", [])
        for r in run["results"]
        if r.get("error")
    ]
    if not rows:
        return []
    lines = ["## Failed", "", "| scenario | error |", "|---|---|"]
    lines += [f"| {name} | `{error.replace('|', '/')}` |" for name, error in rows]
    return [*lines, ""]


def run_markdown(run: dict[str, Any]) -> list[str]:
    lines = [
        f"## {run['size']:,} conversations",
        "",
        "| scenario | depth | requests | x baseline | median s | p95 s | x baseline time |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    base = {r["depth"]: r for r in run["results"] if r["scenario"] == BASELINE and r["seconds"]}
    estimated = False
    for r in run["results"]:
        depth = r["depth"] if r["depth"] is not None else "-"
        name = r["scenario"]
        if r["extra"].get("estimated_from_depth"):
            name, estimated = f"{name} (estimated*)", True
        if r.get("error") and not r["seconds"]:
            lines.append(f"| {name} | {depth} | - | - | failed | - | - |")
            continue
        b = base.get(r["depth"])
        req_ratio = _ratio(r["requests"], b["requests"]) if b else "-"
        time_ratio = _ratio(r["median"], b["median"]) if b else "-"
        failed = " (failed)" if r.get("error") else ""
        lines.append(
            f"| {name}{failed} | {depth} | {r['requests']:,} | {req_ratio} | "
            f"{r['median']:.3f} | {r['p95']:.3f} | {time_ratio} |"
        )
    lines.append("")
    if estimated:
        lines += [
            "\\* the SDK walk's time per request at the deepest depth walked in this run, times "
            "the exact requests of the deeper walk.",
            "",
        ]
    rate = run.get("warm_lookups_per_second")
    if rate is not None:
        lines += [f"Warm in-memory lookups: {rate:,} per second.", ""]
    return lines


def observed_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """Live-call and SIP Call-ID lookups, documented against observed profile, side by side."""
    by_key: dict[tuple[str, Any], dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_key.setdefault((r["scenario"], r["in_flight"]), {})[r["profile"]] = r
    lines = [
        "## Documented and observed API",
        "",
        "The emulator plays two readings of the API (`Emulator(profile=...)`): *documented*, and "
        "*observed*, which hides a live call's SID from its `GET` until it ends, keeps live calls "
        "out of the filter, and shows a SIP call's RFC 3261 Call-ID next to its UUID. Request "
        "counts (exact, in-process), in a 1,000-call history. A live call is looked up by a tool "
        "during the call (`in_progress=True`) by a resolver that already proved the filter.",
        "",
        "| scenario | calls in flight | documented | answered by | observed | answered by |",
        "|---|---:|---:|---|---:|---|",
    ]
    for (scenario, in_flight), pair in by_key.items():
        d, o = pair.get("documented", {}), pair.get("observed", {})
        lines.append(
            f"| {scenario} | {in_flight if in_flight is not None else '-'} | "
            f"{d.get('requests', '-')} | {d.get('outcome', '-')} | "
            f"{o.get('requests', '-')} | {o.get('outcome', '-')} |"
        )
    return [*lines, "", *OBSERVED_NOTES.splitlines(), ""]


OBSERVED_NOTES = """\
Reading it: under the observed API no request can find a live call's conversation by its SID,
so the lookup fails with advice (learn the mapping at the source: `system__conversation_id`,
the outbound-call response, your own session, `remember()`), the live calls it read are not
read again while they stay live, and the call is found for 2 requests once it ended. A Call-ID
holding `:` cannot go into `name:eq:value`, so it is looked for among the calls that have a
Call-ID (`system__call_id:neq:`); the SIP target sits a quarter down the history.

### Bounds

`python -m benchmarks --quick` fails when one of these does not hold (N = calls in flight,
live calls are listed 100 a page):

| scenario | documented | observed |
|---|---:|---:|
| a finished call, server-side filter (every size and depth) | 2 | 2 |
| live call, first lookup | 2 | 2 + ceil(N/100) + N |
| live call, again (within `live_ttl`) | 0 | 2 + ceil(N/100) |
| live call, after it ended | 0 | 2, and found |
| SIP Call-ID without `:`, filter working | 3 | 3 |
| the SDK walk, every depth walked | its exact count | its exact count |
"""


def _ratio(value: float, base: float) -> str:
    if base == 0:
        return "-"
    ratio = value / base
    return f"{ratio:.3f}" if ratio < 0.1 else f"{ratio:.2f}"


def svg_plot(report: dict[str, Any]) -> str:
    """Requests and median time against depth, log scales, for the largest history."""
    runs = [run for run in report.get("runs", []) if run["results"]]
    if not runs:
        return ""  # nothing measured yet
    run = runs[-1]
    series: dict[str, list[tuple[int, float, float]]] = {}
    for r in run["results"]:
        if not r["seconds"] or r["depth"] is None:
            continue
        if r["scenario"].startswith(("baseline", "ours: cold")):
            series.setdefault(r["scenario"], []).append((r["depth"], r["requests"], r["median"]))
    colours = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"]
    width, height, pad = 900, 380, 60
    panel = (width - 3 * pad) // 2
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 120}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="{pad}" y="20" font-size="14">{run["size"]:,} conversations: requests and '
        "median time to resolve, by depth (log scales)</text>",
    ]
    for index, (title, pick) in enumerate((("HTTP requests", 1), ("median seconds", 2))):
        x0 = pad + index * (panel + pad)
        values = [p[pick] for points in series.values() for p in points if p[pick] > 0]
        depths = [p[0] for points in series.values() for p in points]
        if not values:
            continue
        lo, hi = math.log10(min(values)), math.log10(max(values)) + 1e-9
        dlo, dhi = math.log10(min(depths)), math.log10(max(depths)) + 1e-9

        def x(d: float, x0: int = x0, dlo: float = dlo, dhi: float = dhi) -> float:
            return x0 + (math.log10(d) - dlo) / (dhi - dlo) * panel

        def y(v: float, lo: float = lo, hi: float = hi) -> float:
            frac = (math.log10(max(v, 1e-9)) - lo) / (hi - lo)
            return 55 + (1 - frac) * (height - 100)

        out.append(f'<text x="{x0}" y="40">{title}</text>')
        out.append(
            f'<rect x="{x0}" y="45" width="{panel}" height="{height - 80}" '
            'fill="none" stroke="#999"/>'
        )
        for d in sorted(set(depths)):
            out.append(f'<text x="{x(d) - 8:.0f}" y="{height - 20}">{d}</text>')
        for colour, points in zip(colours, series.values(), strict=False):
            pts = " ".join(f"{x(p[0]):.1f},{y(p[pick]):.1f}" for p in sorted(points) if p[pick] > 0)
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
            for p in points:
                if p[pick] > 0:
                    label = f"{p[pick]:,.0f}" if pick == 1 else f"{p[pick]:.2f}"
                    out.append(
                        f'<text x="{x(p[0]) + 3:.0f}" y="{y(p[pick]) - 3:.0f}" '
                        f'fill="{colour}">{label}</text>'
                    )
    for i, (colour, name) in enumerate(zip(colours, series, strict=False)):
        out.append(
            f'<rect x="{pad}" y="{height + 20 + i * 18}" width="12" height="12" fill="{colour}"/>'
        )
        out.append(f'<text x="{pad + 18}" y="{height + 30 + i * 18}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
