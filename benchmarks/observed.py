"""Request counts under both emulator profiles: live-call lookups with 1, 10 and 100 calls in
flight, and SIP Call-ID lookups with the filter working and not.

Counts only (exact, from the emulator's own log), in-process: the HTTP side of the profiles is
what differs, and time adds nothing a count does not already say.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from callsid_resolver import CallSidResolver, ConversationNotFound, ElevenLabsClient, Resolution
from callsid_resolver.testing import (
    Emulator,
    FilterMode,
    newest_first,
    synthetic_conversations,
)

API_KEY = "bench-key"
HISTORY = 1_000
PROFILES = ("documented", "observed")


@dataclass
class Count:
    scenario: str
    profile: str
    in_flight: int | None
    requests: int
    outcome: str  # the step that answered, or "not found"


def measure_observed(in_flight: tuple[int, ...] = (1, 10, 100)) -> list[Count]:
    out: list[Count] = []
    for profile in PROFILES:
        for n in in_flight:
            out += _live_call(profile, n)
        out += _sip_call_ids(profile)
    return out


def _live_call(profile: str, n: int) -> list[Count]:
    """A tool during a call looks its SID up (`in_progress=True`) while `n` calls are live,
    twice, then once more after the call ended."""
    history = synthetic_conversations(HISTORY + n, seed=n, live=n, phone_share=1.0)
    emulator = Emulator(history, profile=profile)
    ordered = newest_first(history)
    live = [c for c in ordered if c["status"] == "in-progress"]
    target = next(c for c in live if c["metadata"]["phone_call"]["type"] == "twilio")
    sid = target["metadata"]["phone_call"]["call_sid"]
    finished = next(c for c in ordered if c["status"] == "done")
    out = []
    with ElevenLabsClient(API_KEY, transport=emulator.transport()) as client:
        resolver = CallSidResolver(client)
        resolver.resolve(finished["metadata"]["phone_call"]["call_sid"])  # proves the filter
        for name in ("live call, first lookup", "live call, again"):
            count = _count(emulator, lambda: resolver.resolve(sid, in_progress=True))
            out.append(Count(name, profile, n, *count))
        emulator.end_session(target["conversation_id"])
        count = _count(emulator, lambda: resolver.resolve(sid))
        out.append(Count("live call, after it ended", profile, n, *count))
    return out


def _sip_call_ids(profile: str) -> list[Count]:
    """A finished SIP call looked up by its Call-ID, with the filter working and rejected. A
    Call-ID holding `:` (an IPv6 host) skips the filter (see docs/resolution.md)."""
    history = synthetic_conversations(HISTORY, seed=3)
    ordered = newest_first(history)
    phones = [c["metadata"]["phone_call"] for c in ordered if c["metadata"].get("phone_call")]
    sip = [p["call_id"] for p in phones if p["type"] == "sip_trunking"]
    out: list[Count] = []
    for host, call_ids in (
        ("a name host", [i for i in sip if ":" not in i]),
        ("an IPv6 host", [i for i in sip if ":" in i]),
    ):
        call_id = call_ids[len(call_ids) // 4]  # a quarter down the history
        modes: tuple[tuple[FilterMode, str], ...] = (("support", "working"), ("reject", "rejected"))
        for filter_mode, state in modes:
            emulator = Emulator(history, profile=profile)
            emulator.filter_mode = filter_mode
            with ElevenLabsClient(API_KEY, transport=emulator.transport()) as client:
                resolver = CallSidResolver(client)
                resolver.resolve(phones[0]["call_sid"])  # long-lived: the filter's state known
                count = _count(emulator, lambda: resolver.resolve(call_id))  # noqa: B023
            out.append(Count(f"SIP Call-ID ({host}), filter {state}", profile, None, *count))
    return out


def _count(emulator: Emulator, run: Callable[[], Resolution]) -> tuple[int, str]:
    """The requests `run` sent and the step that answered (or "not found")."""
    emulator.reset_counts()
    try:
        outcome: str = run().source
    except ConversationNotFound:
        outcome = "not found"
    return emulator.total_requests, outcome


def bounds_hold(counts: list[Count]) -> list[str]:
    """The bounds docs/benchmarks.md states for these scenarios; the ones broken, as text."""
    failures = []
    for c in counts:
        n = c.in_flight or 0
        pages = -(-n // 100)  # live calls listed 100 a page
        bound: dict[str, int] = {
            "live call, first lookup": 2 if c.profile == "documented" else 2 + pages + n,
            "live call, again": 0 if c.profile == "documented" else 2 + pages,
            "live call, after it ended": 0 if c.profile == "documented" else 2,
        }
        limit = bound.get(c.scenario)
        if c.scenario == "SIP Call-ID (a name host), filter working":
            limit = 3  # system__call_sid (empty), system__call_id, one GET
        if limit is not None and c.requests > limit:
            failures.append(f"{c.scenario} [{c.profile}, {n} live]: {c.requests} > {limit}")
        if c.scenario == "live call, after it ended" and c.outcome == "not found":
            failures.append(f"{c.scenario} [{c.profile}, {n} live]: not found once it ended")
    return failures


def as_rows(counts: list[Count]) -> list[dict[str, Any]]:
    return [c.__dict__ for c in counts]
