"""When to retry, and how long to wait: decided here, slept by the drivers."""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

__all__ = ["RetryPolicy", "RetryState", "retry_after"]


@dataclass(frozen=True)
class RetryPolicy:
    """Retries with capped exponential backoff and full jitter, bounded by a total deadline.

    Only idempotent faults are retried: 429, 5xx, and transport faults (connection refused or
    dropped, timeouts). A `Retry-After` (or `retry-after-ms`) header is honoured as given; a wait
    that would end past `deadline` seconds after the first attempt is not taken, and the last error
    is raised instead. The deadline also bounds an attempt in progress, however slowly the server
    sends (`DeadlineExceeded`). `max_attempts=1` disables retries.
    """

    max_attempts: int = 4
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    deadline: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_initial < 0 or self.backoff_max < 0 or self.deadline <= 0:
            raise ValueError("backoff and deadline must be positive")

    def start(self, now: float) -> RetryState:
        """A fresh retry state for one call, its deadline counted from `now` (monotonic seconds)."""
        return RetryState(self, started=now)


@dataclass
class RetryState:
    """One call's progress through its retry budget."""

    policy: RetryPolicy
    started: float
    attempts: int = 0
    out_of_time: bool = False
    rng: random.Random = field(default_factory=random.Random, repr=False)

    @property
    def deadline_at(self) -> float:
        """The clock reading past which no attempt may go on, in progress or not."""
        return self.started + self.policy.deadline

    def attempt_timeout(self, timeout: httpx.Timeout, now: float) -> dict[str, float | None]:
        """The per-attempt timeout, shrunk so no attempt outlives the deadline."""
        self.attempts += 1
        remaining = max(self.started + self.policy.deadline - now, 0.001)
        return {
            name: remaining if value is None else min(value, remaining)
            for name, value in timeout.as_dict().items()
        }

    def count_unsent_attempt(self) -> None:
        """Count an attempt that never went out (no request slot freed before the deadline): it
        used up the call's time all the same, and the error says how many attempts were made."""
        self.attempts += 1

    def after_response(self, status: int, headers: Mapping[str, str], now: float) -> float | None:
        """Seconds to wait before the next attempt, or None to stop and use this response."""
        if status != 429 and status < 500:
            return None
        return self._wait(retry_after(headers), now)

    def after_fault(self, now: float) -> float | None:
        """Seconds to wait after a transport fault, or None to give up."""
        return self._wait(None, now)

    def _wait(self, server_wish: float | None, now: float) -> float | None:
        if now >= self.deadline_at:
            self.out_of_time = True  # the attempt itself was cut short by the deadline
            return None
        if self.attempts >= self.policy.max_attempts:
            return None
        if server_wish is not None:
            delay = server_wish
        else:
            cap = min(
                self.policy.backoff_max, self.policy.backoff_initial * 2 ** (self.attempts - 1)
            )
            delay = self.rng.uniform(0, cap)
        if now + delay >= self.started + self.policy.deadline:
            self.out_of_time = True
            return None
        return delay


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The server's requested wait: `retry-after-ms`, else `Retry-After` (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
        return max(seconds, 0.0)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
