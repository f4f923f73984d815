from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from callsid_resolver import RetryPolicy
from callsid_resolver._core._retry import retry_after


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after-ms": "nope", "retry-after": "2"}, 2.0),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_forms(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(httpx.Headers(headers)) == expected


def test_retry_after_as_http_date() -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    seconds = retry_after(httpx.Headers({"retry-after": format_datetime(when, usegmt=True)}))
    assert seconds is not None
    assert 28 <= seconds <= 30


def test_only_429_5xx_and_faults_are_retried() -> None:
    state = RetryPolicy().start(0)
    state.attempts = 1
    for status in (200, 400, 401, 403, 404, 408, 409, 422):
        assert state.after_response(status, {}, 0) is None
    for status in (429, 500, 502, 503, 504):
        assert state.after_response(status, {}, 0) is not None
    assert state.after_fault(0) is not None


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(max_attempts=10, backoff_initial=0.5, backoff_max=4, deadline=1000)
    state = policy.start(0)
    state.rng = random.Random(7)
    caps = []
    for attempt in range(1, 8):
        state.attempts = attempt
        delay = state.after_fault(0)
        assert delay is not None
        caps.append(min(4, 0.5 * 2 ** (attempt - 1)))
        assert 0 <= delay <= caps[-1]
    assert caps == [0.5, 1, 2, 4, 4, 4, 4]


def test_attempts_and_deadline_bound_retries() -> None:
    state = RetryPolicy(max_attempts=2, deadline=10).start(100)
    state.attempts = 2
    assert state.after_fault(100) is None
    assert not state.out_of_time
    state = RetryPolicy(deadline=10).start(100)
    state.attempts = 1
    assert state.after_response(429, {"retry-after": "11"}, 100) is None
    assert state.out_of_time


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="positive"):
        RetryPolicy(deadline=0)
