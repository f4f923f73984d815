"""The sync client's watchdog (a bound on each attempt's total time), measured for the cold area.

A shared thread with a heap of deadlines against the thread per attempt it replaced, and against
no watchdog, over sequential loopback GETs, interleaved. The GETs go to the replay server
(`benchmarks/loopback.py`) with no latency: each costs about a millisecond there, so the
watchdog's share shows (the emulator answered a sequential GET in about 45 ms on 2026-11-30).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.goals import Goal
from callsid_resolver import ElevenLabsClient, _concurrency
from callsid_resolver._watchdog import Watchdog

AREA = "cold path"


class _TimerWatchdog(Watchdog):
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


class _NoWatchdog(Watchdog):
    __slots__ = ()

    def __init__(self, seconds: float) -> None:
        self._stream = None
        self._cancelled = False

    def cancel(self) -> None:
        pass


@contextmanager
def _watchdog(cls: type[Watchdog]) -> Iterator[None]:
    # The sync client's deadline guard looks `Watchdog` up in its module's namespace at each
    # attempt.
    namespace = vars(_concurrency)
    saved = namespace["Watchdog"]
    namespace["Watchdog"] = cls
    try:
        yield
    finally:
        namespace["Watchdog"] = saved


def watchdog_costs(
    base_url: str, api_key: str, conversation_id: str, gets: int, repeats: int
) -> Goal:
    """Seconds per sequential loopback GET with each watchdog; the goal: the shared thread at
    least as fast as a thread per attempt (its saving and the remaining cost go in the notes)."""
    variants: dict[str, type[Watchdog]] = {
        "shared thread": Watchdog,
        "thread per attempt": _TimerWatchdog,
        "none": _NoWatchdog,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    with ElevenLabsClient(api_key, base_url=base_url) as client:
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
        notes=f"median of {repeats} x {gets} GETs from the replay server; without a watchdog "
        f"{per_get['none'] * 1e6:,.0f} µs/GET, so the watchdog costs "
        f"{(per_get['shared thread'] - per_get['none']) * 1e6:,.0f} µs (shared) vs "
        f"{(per_get['thread per attempt'] - per_get['none']) * 1e6:,.0f} µs (per attempt)",
    )
