"""One API call's retry loop, written once as a generator that both clients drive.

As in httpx's `Auth.auth_flow` (https://www.python-httpx.org/advanced/authentication/), the loop
does no I/O: it yields what to do next, `Attempt` (send one request now) or `Pause` (wait this
long), and is sent what came of an attempt, the response or the transport fault. It returns the
decoded model and the number of requests sent, or raises the error the caller sees. The asyncio
and the blocking client each only send and sleep, in their own I/O style.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import httpx

from .._exceptions import ApiError, DeadlineExceeded, TransportError
from ._api import ApiCall, ModelT
from ._retry import RetryPolicy, RetryState
from ._secrets import scrub

__all__ = ["Attempt", "Outcome", "Pause", "Step", "give_up", "retry_flow"]

logger = logging.getLogger("callsid_resolver")


@dataclass(frozen=True)
class Attempt:
    """Send one attempt now. `state` gives its timeouts (`RetryState.attempt_timeout`, which
    also counts it) and the deadline that bounds it as a whole (docs/protocol.md §10)."""

    state: RetryState


@dataclass(frozen=True)
class Pause:
    """Wait `seconds` before the next attempt, then send the flow `None`."""

    seconds: float


Step = Attempt | Pause
# What a driver sends back: the response or the transport fault of an `Attempt`, None after a
# `Pause`.
Outcome = httpx.Response | httpx.RequestError | None


def retry_flow(
    call: ApiCall[ModelT],
    policy: RetryPolicy,
    *,
    clock: Callable[[], float],
    secrets: tuple[str, ...],
    on_retry: Callable[[int], Any] | None = None,
) -> Generator[Step, Outcome, tuple[ModelT, int]]:
    """The retry loop of one call: the decoded model and the number of requests sent, or the
    `ApiError`, `TransportError` or `DeadlineExceeded` to raise; `on_retry` hears the status of
    each answer about to be retried (a 429), `secrets` are scrubbed from every error's text.

    A driver sends the outcome from outside any `except` block, so that the transport fault
    (whose request holds the API key) is never the context of the error raised here.
    """
    state = policy.start(clock())
    while True:
        outcome = yield Attempt(state)
        if isinstance(outcome, httpx.Response):
            _log(call, str(outcome.status_code), state)
            delay = state.after_response(outcome.status_code, outcome.headers, clock())
            if delay is None:
                return _decode(call, outcome, state, secrets), state.attempts
            if on_retry is not None:
                on_retry(outcome.status_code)
        elif isinstance(outcome, httpx.RequestError):
            _log(call, type(outcome).__name__, state)
            delay = state.after_fault(clock())
            if delay is None:
                error, cause = give_up(call, state, outcome, secrets)
                raise error from cause
        else:
            raise TypeError("an Attempt is answered with its response or its transport fault")
        resumed = yield Pause(delay)
        if resumed is not None:
            raise TypeError("a Pause is answered with None")


def give_up(
    call: ApiCall[Any], state: RetryState, fault: Exception, secrets: tuple[str, ...]
) -> tuple[TransportError, Exception]:
    """The error to raise for a transport fault not retried, and the cause to chain to it: a copy
    of `fault` without its request, whose headers hold the API key, and with `secrets` scrubbed
    from its text."""
    cls = DeadlineExceeded if state.out_of_time else TransportError
    text = scrub(str(fault), secrets)
    error = cls(
        f"{type(fault).__name__}: {text}" if text else type(fault).__name__,
        method=call.method,
        path=call.path,
        attempts=state.attempts,
    )
    try:
        cause: Exception = type(fault)(text)
    except Exception:  # an exception class with another signature
        cause = httpx.TransportError(text)
    return error, cause


def _decode(
    call: ApiCall[ModelT], response: httpx.Response, state: RetryState, secrets: tuple[str, ...]
) -> ModelT:
    try:
        return call.decode(response, secrets=secrets)
    except ApiError as exc:
        exc.attempts = state.attempts  # so that a caller counting requests counts retries
        raise


def _log(call: ApiCall[Any], outcome: str, state: RetryState) -> None:
    logger.debug("%s %s -> %s (attempt %d)", call.method, call.path, outcome, state.attempts)
