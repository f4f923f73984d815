"""Markdown table and a dependency-free SVG plot of a benchmark report."""

from __future__ import annotations

import math
from typing import Any

from .sending import markdown as sending_markdown

BASELINE = "baseline: SDK list+get walk"


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        "# Benchmark results",
        "",
        f"{s['date']}, {s['machine']}; emulator on loopback with {s['latency_s'] * 1000:g} ms per "
        f"request; {s['repeats']} runs per scenario ({s['baseline_repeats']} for the slow ones).",
        "Requests are exact (counted by the emulator); times are wall-clock median and p95; "
        "ratios are against the baseline at the same depth in the same run.",
        "",
    ]
    for run in report["runs"]:
        lines += [
            f"## {run['size']:,} conversations",
            "",
            "| scenario | depth | requests | x baseline | median s | p95 s | x baseline time |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        base = {r["depth"]: r for r in run["results"] if r["scenario"] == BASELINE}
        for r in run["results"]:
            b = base.get(r["depth"])
            req_ratio = _ratio(r["requests"], b["requests"]) if b else "-"
            time_ratio = _ratio(r["median"], b["median"]) if b else "-"
            depth = r["depth"] if r["depth"] is not None else "-"
            lines.append(
                f"| {r['scenario']} | {depth} | {r['requests']:,} | {req_ratio} | "
                f"{r['median']:.3f} | {r['p95']:.3f} | {time_ratio} |"
            )
        lines += ["", f"Warm in-memory lookups: {run['warm_lookups_per_second']:,} per second.", ""]
    if report.get("observed"):
        lines += observed_markdown(report["observed"])
    if report.get("sending"):
        lines += sending_markdown(report["sending"])
    lines.append(
        f"MemoryCache: {report['extras']['bytes_per_cached_mapping']:,} bytes per cached mapping "
        "(tracemalloc)."
    )
    return "\n".join(lines) + "\n"


def observed_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """Live-call and SIP Call-ID lookups, documented against observed profile, side by side."""
    by_key: dict[tuple[str, Any], dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_key.setdefault((r["scenario"], r["in_flight"]), {})[r["profile"]] = r
    lines = [
        "## Documented and observed API",
        "",
        "Request counts (exact, in-process) under the two emulator profiles, in a 1,000-call "
        "history. A live call is looked up by a tool during the call (`in_progress=True`) "
        "by a resolver that already proved the filter; *observed* hides a live call's SID "
        "until it ends and its filter does not see live calls.",
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
    return [*lines, ""]


def _ratio(value: float, base: float) -> str:
    if base == 0:
        return "-"
    ratio = value / base
    return f"{ratio:.3f}" if ratio < 0.1 else f"{ratio:.2f}"


def svg_plot(report: dict[str, Any]) -> str:
    """Requests and median time against depth, log scales, for the largest history."""
    run = report["runs"][-1]
    series: dict[str, list[tuple[int, float, float]]] = {}
    for r in run["results"]:
        if r["depth"] is not None and r["scenario"].startswith(("baseline", "ours: cold")):
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
