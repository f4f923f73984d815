"""The retry loop both clients drive (`_core._flow.retry_flow`), driven here by hand: what it asks
for after each outcome, what it returns, and what it raises, with no client and no I/O."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import httpx
import pytest

from callsid_resolver import DeadlineExceeded, RetryPolicy, ServerError, SignedUrl, TransportError
from callsid_resolver._core import _api
from callsid_resolver._core._flow import Attempt, Outcome, Pause, Step, retry_flow

KEY = "sk_flow_secret_key"
SIGNED = {"signed_url": "wss://api.elevenlabs.io/v1/convai/conversation?token=t"}


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


Flow = Generator[Step, Outcome, tuple[SignedUrl, int]]


def start(policy: RetryPolicy, clock: Clock, heard: list[int] | None = None) -> Flow:
    call = _api.get_signed_url("agent_1")
    on_retry = heard.append if heard is not None else None
    return retry_flow(call, policy, clock=clock, secrets=(KEY,), on_retry=on_retry)


def sent(step: Step, clock: Clock) -> Attempt:
    """The attempt, sent as a driver sends it: its request built, so counted."""
    assert isinstance(step, Attempt)
    step.state.attempt_timeout(httpx.Timeout(10.0), clock())
    return step


def finish(flow: Flow, outcome: Outcome) -> Any:
    with pytest.raises(StopIteration) as done:
        flow.send(outcome)
    return done.value.value


def test_it_asks_for_attempts_and_pauses_then_returns_the_model_and_the_count() -> None:
    clock, heard = Clock(), []
    flow = start(RetryPolicy(), clock, heard)
    first = sent(next(flow), clock)
    assert first.state.deadline_at == 50.0 + RetryPolicy().deadline
    assert flow.send(httpx.Response(429, headers={"retry-after": "2"})) == Pause(2.0)
    assert heard == [429]
    sent(flow.send(None), clock)
    backoff = flow.send(httpx.ConnectError("refused"))
    assert isinstance(backoff, Pause)
    assert 0 <= backoff.seconds <= 1.0  # attempt 2: full jitter under a 1 s cap
    assert heard == [429]  # a transport fault has no status to hear
    sent(flow.send(None), clock)
    signed, attempts = finish(flow, httpx.Response(200, json=SIGNED))
    assert isinstance(signed, SignedUrl)
    assert attempts == 3


def test_an_api_error_after_the_last_attempt_counts_every_attempt() -> None:
    clock = Clock()
    flow = start(RetryPolicy(max_attempts=2, backoff_initial=0), clock)
    sent(next(flow), clock)
    assert flow.send(httpx.Response(503)) == Pause(0.0)
    sent(flow.send(None), clock)
    with pytest.raises(ServerError) as info:
        flow.send(httpx.Response(503, text=f"upstream said {KEY}"))
    assert info.value.attempts == 2
    assert KEY not in str(info.value)


def test_giving_up_on_a_fault_keeps_its_request_and_the_key_out_of_the_error() -> None:
    clock = Clock()
    flow = start(RetryPolicy(max_attempts=1), clock)
    sent(next(flow), clock)
    request = httpx.Request("GET", "https://api.elevenlabs.io/", headers={"xi-api-key": KEY})
    with pytest.raises(TransportError) as info:
        flow.send(httpx.ReadError(f"reset while sending {KEY}", request=request))
    error = info.value
    assert type(error) is TransportError
    assert error.attempts == 1
    assert KEY not in str(error)
    cause = error.__cause__
    assert isinstance(cause, httpx.ReadError)
    assert KEY not in str(cause)
    with pytest.raises(RuntimeError):  # the copy has no request, so no headers, so no key
        _ = cause.request
    assert error.__context__ is None  # sent from outside any `except`


def test_a_fault_past_the_deadline_is_deadline_exceeded() -> None:
    clock = Clock()
    flow = start(RetryPolicy(deadline=5), clock)
    sent(next(flow), clock)
    clock.now += 5
    with pytest.raises(DeadlineExceeded):
        flow.send(httpx.ReadTimeout("slow"))


def test_a_driver_answering_out_of_turn_is_told() -> None:
    clock = Clock()
    flow = start(RetryPolicy(), clock)
    sent(next(flow), clock)
    with pytest.raises(TypeError, match="Attempt"):
        flow.send(None)
    flow = start(RetryPolicy(), clock)
    sent(next(flow), clock)
    assert isinstance(flow.send(httpx.Response(500)), Pause)
    with pytest.raises(TypeError, match="Pause"):
        flow.send(httpx.Response(200, json=SIGNED))
