"""`python -m benchmarks [--quick] [--only AREA ...]`: the goals of issue #16 against their
baselines, then round trips and time to resolve (ours against the SDK walk) and sending into a
live call (ours against a hand-held session).

Each area of issue #16 (`benchmarks/cold.py`, `warm.py`, `scan.py`, `fleet.py`, when present)
exposes `measure(quick) -> list[Goal]`. The resolution scenarios start the emulator on loopback
with a seeded synthetic history and a per-request latency (default 50 ms, like a real API across
the internet) and measure each scenario at several depths (the target call's position, newest
first). Ratios are against the baseline measured in the same run.

Every section and scenario runs under a guard: one that fails is recorded and the run goes on,
and the report (JSON, Markdown, SVG) is rewritten after each one, so a killed run leaves what it
measured. `--quick` is CI's smoke test: it checks that the benchmark runs and that round-trip
counts hold, never wall times.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from .goals import Goal, goal_from_dict, run_area
from .mcp import measure_mcp
from .observed import as_rows, measure_observed
from .report import docs_page, markdown, svg_plot
from .resolution import REDIS_URL, check_round_trips, run_size
from .scenarios import (
    API_KEY,
    memory_of_mappings,
)
from .sending import measure_sending

T = TypeVar("T")
# Issue #16's areas, each `benchmarks/<area>.py` with `measure(quick) -> list[Goal]`.
AREAS: tuple[str, ...] = ("cold", "warm", "scan", "fleet")
RUN_FIRST = ("fleet", "warm", "scan", "cold")  # by their full runs' minutes, 2026-11-30
SECTIONS = ("resolution", "observed", "sending", "mcp", "memory")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:  # Markdown, SVG and the docs page again from a saved JSON report
        report = json.loads(args.render.read_text())
        Progress(args.out, report, args.docs).save()
        return 0
    # The MCP section times tool calls through two server processes: it checks no round trip
    # that the other sections do not, and would double the quick run, so quick runs it on demand.
    default = [s for s in SECTIONS if not (args.quick and s == "mcp")]
    only = set(args.only or (*AREAS, *default))
    progress = Progress(args.out, new_report(args), args.docs)
    # The goals first: they are the headline, and a run stopped early should still hold them;
    # the quickest areas first, so that one that overruns costs the fewest goals.
    for area in sorted(AREAS, key=lambda a: RUN_FIRST.index(a) if a in RUN_FIRST else 0):
        if area in only:
            progress.guard(f"area {area}", partial(run_goals, progress, area, args))
    if "resolution" in only:
        for size in args.sizes:
            depths = [d for d in args.depths if d <= size]
            name = f"resolution, {size:,} conversations"
            progress.guard(name, partial(run_size, progress, size, depths, args))
    if "observed" in only:
        # Request counts of live-call and SIP Call-ID lookups under both emulator profiles.
        observed = progress.guard("observed", lambda: as_rows(measure_observed()))
        progress.report["observed"] = observed or []
    if "sending" in only:
        # Raises (recorded as a failure) when a message is not delivered where it should be.
        sent = progress.guard("sending", lambda: measure_sending(REDIS_URL, args.messages))
        progress.report["sending"] = [r.__dict__ for r in sent or []]
    if "mcp" in only:
        calls, repeat = (5, 1) if args.quick else (50, 4)
        tool = progress.guard("mcp", lambda: measure_mcp(calls, repeat))
        if tool is not None:
            progress.report["mcp"] = tool
    if "memory" in only:
        count = 10_000 if args.quick else args.mappings
        per_mapping = progress.guard("memory", lambda: memory_of_mappings(count))
        if per_mapping is not None:
            progress.report["extras"]["bytes_per_cached_mapping"] = round(per_mapping)
    progress.report["finished"] = True
    progress.save()
    sys.stdout.write(markdown(progress.report))
    return 1 if problems(progress.report) else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="CI smoke test: small and fast")
    p.add_argument(
        "--only",
        action="append",
        choices=[*AREAS, *SECTIONS],
        help="run only this area or section (repeatable)",
    )
    # Every depth cost the same at 1,000, 10,000 and 100,000 conversations (the depth-250 walk
    # 13.94, 13.97 and 14.02 s; the scan 2.17, 2.13, 2.31 s): the smaller sizes bought nothing.
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    p.add_argument("--depths", type=int, nargs="+", default=[1, 50, 250, 2_000])
    p.add_argument(
        "--walk-depth",
        type=int,
        default=250,
        help="deeper SDK walks are estimated from the deepest one run (their cost is linear)",
    )
    p.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--baseline-repeats", type=int, default=3)
    p.add_argument(
        "--deep-repeats", type=int, default=1, help="runs of the slow ones from depth 100 on"
    )
    # 2,000 sends per path hold a median and p95 as steady as 5,000 did, in half a minute less.
    p.add_argument("--messages", type=int, default=2_000, help="per sending path")
    p.add_argument("--distinct", type=int, default=1_000, help="cold SIDs looked up at once")
    p.add_argument("--mappings", type=int, default=100_000, help="for the memory measure")
    p.add_argument(
        "--area-timeout",
        type=float,
        help="seconds an area may run, in a process of its own (0: in this process); "
        "default 480, 120 with --quick",
    )
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--docs", type=Path, help="also write the docs page (docs/benchmarks.md)")
    p.add_argument("--render", type=Path, help="only render a saved latest.json again")
    args = p.parse_args(argv)
    if args.area_timeout is None:
        args.area_timeout = 120.0 if args.quick else 480.0
    if args.quick:
        args.sizes, args.depths, args.latency = [1_000], [1, 50, 250], 0.002
        args.repeats, args.baseline_repeats, args.messages = 2, 1, 300
        args.distinct = 200  # a count check, not a load test: the `cold` area loads the pool
    return args


def new_report(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "settings": {
            "quick": args.quick,
            "latency_s": args.latency,
            "repeats": args.repeats,
            "baseline_repeats": args.baseline_repeats,
            "walk_depth": args.walk_depth,
            "area_timeout_s": args.area_timeout,
            "machine": f"{platform.machine()}, {platform.python_implementation()} "
            f"{platform.python_version()}, {platform.system()}",
            "date": time.strftime("%Y-%m-%d"),
        },
        "finished": False,
        "goals": [],
        "runs": [],
        "failures": [],
        "timings": {},
        "extras": {},
    }


class Progress:
    """The report so far, saved after every scenario (a killed run leaves what it measured)."""

    def __init__(self, out: Path, report: dict[str, Any], docs: Path | None = None) -> None:
        self.out, self.report, self.docs = out, report, docs
        self.started = time.perf_counter()

    def guard(self, name: str, run: Callable[[], T]) -> T | None:
        """Run one section; an exception is recorded as a failure and the run goes on."""
        started = time.perf_counter()
        self._log(f"{name}: started")
        value: T | None = None
        try:
            value = run()
        except Exception as exc:  # recorded, not fatal: the other sections still run
            self.report["failures"].append({"scenario": name, "error": repr(exc)[:300]})
            self._log(f"{name}: FAILED {exc!r}"[:300])
        took = time.perf_counter() - started
        self.report["timings"][name] = round(took, 1)
        self._log(f"{name}: done in {took:.1f} s")
        self.save()
        return value

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        _write(self.out / "latest.json", json.dumps(self.report, indent=2) + "\n")
        _write(self.out / "latest.md", markdown(self.report))
        plot = svg_plot(self.report)
        if plot:
            _write(self.out / "requests_and_time_by_depth.svg", plot)
        if self.docs:
            _write(self.docs, docs_page(self.report))
            if plot:
                _write(self.docs.parent / "assets" / "benchmarks.svg", plot)

    def _log(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.started:7.1f} s] {text}", file=sys.stderr, flush=True)


def _write(path: Path, text: str) -> None:
    # Whole files only: a reader (or a kill) never sees one half-written.
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def run_goals(progress: Progress, area: str, args: argparse.Namespace) -> None:
    name = area_module(area)
    if name not in sys.modules and importlib.util.find_spec(name) is None:
        if args.only and area in args.only:
            raise LookupError(f"--only {area}: there is no benchmarks/{area}.py")
        progress.report.setdefault("absent_areas", []).append(area)
        return

    def measure(quick: bool) -> list[Goal]:
        if args.area_timeout:
            return measure_apart(name, quick, args.area_timeout)
        # Imported here so that an area that fails to import is a failed goal, like one that
        # fails to measure.
        found: list[Goal] = importlib.import_module(name).measure(quick)
        return found

    goals = [g.as_dict() | {"module": area} for g in run_area(area, measure, args.quick)]
    # Shown in the order (AREAS), whatever order they ran in.
    order = {a: i for i, a in enumerate(AREAS)}
    progress.report["goals"] = sorted(
        [*progress.report["goals"], *goals], key=lambda g: order.get(g.get("module", ""), 0)
    )


def area_module(area: str) -> str:
    return f"{__package__}.{area}"


CHILD = """
import dataclasses, importlib, json, sys
goals = importlib.import_module(sys.argv[1]).measure(sys.argv[2] == "quick")
print("\\n" + MARK + json.dumps([dataclasses.asdict(g) for g in goals]), flush=True)
"""
MARK = "goals of the area: "


def measure_apart(name: str, quick: bool, timeout: float) -> list[Goal]:
    """An area's `measure` in a process of its own, ended (with the emulators it started) when
    it runs past `timeout`: a hung or oversized area costs its goals, not the run's other
    goals. Its own process also keeps one area's memory (a million mappings) and threads out
    of the next one's measurements."""
    root = str(Path(__file__).resolve().parent.parent)
    paths = [root, *filter(None, [os.environ.get("PYTHONPATH")])]
    env = os.environ | {"PYTHONPATH": os.pathsep.join(paths)}
    # Our own interpreter and a module name of our own list: nothing untrusted on the line.
    child = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", f"MARK = {MARK!r}\n{CHILD}", name, "quick" if quick else "full"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own group: a timeout ends its emulator processes too
    )
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _end_group(child)
        raise TimeoutError(f"{name} ran past {timeout:g} s (--area-timeout)") from None
    found = [line for line in out.splitlines() if line.startswith(MARK)]
    if child.returncode or not found:
        last = (err.strip().splitlines() or [f"exit status {child.returncode}"])[-1]
        raise RuntimeError(f"{name}: {last}")
    return [goal_from_dict(g) for g in json.loads(found[-1].removeprefix(MARK))]


def _end_group(child: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGTERM)
    try:
        child.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.communicate()


def problems(report: dict[str, Any]) -> list[str]:
    """Everything that makes the run fail: broken round-trip bounds, scenarios, sections and
    areas that raised. A goal short of its target is a finding, not a failure."""
    found = [f"round-trip check failed: {f}" for f in check_round_trips(report)]
    found += [
        f"scenario failed: size {run['size']}: {r['scenario']} at depth {r['depth']}: {r['error']}"
        for run in report["runs"]
        for r in run["results"]
        if r.get("error")
    ]
    found += [f"section failed: {f['scenario']}: {f['error']}" for f in report["failures"]]
    found += [
        f"goal failed: {g['area']}: {g['name']}: {g['failed']}"
        for g in report["goals"]
        if g.get("failed")
    ]
    for line in found:
        print(line, file=sys.stderr)
    return found


__all__ = ["API_KEY", "main"]
