"""Performance goals: a measurement against its baseline from the same run, and a verdict.

Each area's benchmark module exposes `measure(quick: bool) -> list[Goal]`. The runner calls each in
turn; one that raises is recorded as a failed `Goal` and the run goes on. Ratios are only ever taken
between numbers measured in the same run on the same machine, never against a fixed wall time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

Verdict = Literal["met", "short", "failed"]


@dataclass(frozen=True)
class Goal:
    """One goal of issue-style wording, e.g. "warm sync lookups >= 3x TTLCache.get".

    `ratio` is `measured / baseline` when `higher_is_better`, else `baseline / measured`, so a
    ratio >= `target` is always "met". `failed` holds the error when the measurement itself failed.
    """

    area: str
    name: str
    measured: float
    baseline: float
    unit: str
    target: float
    higher_is_better: bool = True
    baseline_name: str = ""
    failed: str | None = None
    notes: str = ""

    @property
    def ratio(self) -> float:
        if self.failed or not self.measured or not self.baseline:
            return 0.0
        if self.higher_is_better:
            return self.measured / self.baseline
        return self.baseline / self.measured

    @property
    def verdict(self) -> Verdict:
        if self.failed:
            return "failed"
        return "met" if self.ratio >= self.target else "short"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ratio": round(self.ratio, 3), "verdict": self.verdict}


def goal_from_dict(saved: dict[str, Any]) -> Goal:
    """A goal again from `Goal.as_dict` (a saved report), ignoring the derived keys."""
    return Goal(**{f.name: saved[f.name] for f in fields(Goal) if f.name in saved})


def run_area(area: str, measure: Callable[[bool], list[Goal]], quick: bool) -> list[Goal]:
    """Run one area's measurements; an exception becomes a failed goal instead of ending the run."""
    try:
        return measure(quick)
    except Exception as exc:  # a benchmark that fails is recorded, not fatal
        return [Goal(area, "(the area's benchmark)", 0.0, 0.0, "", 1.0, failed=repr(exc)[:300])]


def markdown_table(goals: list[Goal]) -> str:
    lines = [
        "| area | goal | measured | baseline | ratio | target | verdict |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for g in goals:
        base = f"{g.baseline:,.4g} {g.unit}" + (f" ({g.baseline_name})" if g.baseline_name else "")
        shown = g.failed or f"{g.measured:,.4g} {g.unit}"
        lines.append(
            f"| {g.area} | {g.name} | {shown} | {base} | {g.ratio:.2f}x | "
            f">= {g.target:g}x | {g.verdict} |"
        )
    return "\n".join(lines)
