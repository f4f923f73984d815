"""The records a send moves through: the `Receipt` a caller gets, and a `Sender`'s jobs.

A job's outcome is set as the result of its future, never as its exception: a caller that gave up
never leaves an unretrieved exception behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from ._errors import SenderError
from ._protocol import ClientEvent
from ._target import Target
from ._transport import Batch

__all__ = [
    "CHANNELS",
    "Attempt",
    "Channel",
    "Job",
    "Outcome",
    "PendingWrite",
    "Posted",
    "Receipt",
    "Skip",
    "confirm",
    "settle",
]

Channel = Literal["session", "monitor", "mailbox"]
CHANNELS: tuple[Channel, ...] = ("session", "monitor", "mailbox")
Outcome = asyncio.Future["Receipt | BaseException"]


@dataclass(frozen=True)
class Receipt:
    """Which channel took a message. `confirmed` is True once the server (session, monitor) or
    the store (mailbox) has it; False only for a session opened with `confirm=False`. Through a
    router, the owning worker acknowledges once its own write is confirmed.

    `conversation_id` is set whenever the sender knew it; `skipped` says, channel by channel,
    why the channels tried before this one did not take the message.
    """

    channel: Channel
    kind: str
    call_sid: str | None
    conversation_id: str | None
    confirmed: bool = True
    worker: str | None = None
    """The worker that delivered it, when the session was reached through a `RedisRouter`."""
    skipped: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class PendingWrite:
    """A message written to a socket (or handed to the worker holding it), not yet confirmed:
    the job settles with `receipt` once `batch` confirms it, or with the batch's error."""

    batch: Batch
    receipt: Receipt


Attempt: TypeAlias = "Receipt | PendingWrite | BaseException"
"""What one channel made of one job: delivered, written and pending, or why not."""


class Skip(Exception):
    """A channel that cannot take this message, with the reason for `NotLive`."""


@dataclass(frozen=True)
class Posted:
    """A mailbox post made for this job in its lane's run: None, or why it failed."""

    error: BaseException | None


@dataclass(eq=False)
class Job:
    """One send: its event, target, the channel the caller named (if any) and its outcome.

    `routed` and `posted` are set when the job's lane handed it over in a run (to the worker
    holding the session, or to the mailbox) before its channels are walked.
    """

    event: ClientEvent
    target: Target
    channel: Channel | None
    done: Outcome
    admitted: asyncio.Future[None] | None = None
    cancelled: bool = False
    routed: Attempt | None = None
    posted: Posted | None = None


def settle(done: Outcome, outcome: Receipt | BaseException) -> None:
    """Give a job its outcome, unless it has one already."""
    if not done.done():
        done.set_result(outcome)


def confirm(done: Outcome, receipt: Receipt, batch: Batch) -> None:
    """Settle a written job once its batch is confirmed (`receipt`) or failed (the error)."""
    with contextlib.suppress(asyncio.CancelledError):
        failure = batch.result()
        settle(done, receipt if failure is None else failure())
        return
    settle(done, SenderError("confirmation was cancelled"))
