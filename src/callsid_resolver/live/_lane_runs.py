"""Runs of a `Sender` lane: consecutive sends for one call that go the same way together.

A run bound for another worker crosses Redis as one router message (`RedisRouter.forward_run`);
a run bound for a mailbox is queued in one step (`RunMailbox.post_many`). Each send of the run
then settles on its own, exactly as if it had gone alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._errors import CallMismatch, MailboxFull
from ._mailbox import RunMailbox
from ._records import Attempt, Job, Receipt, Skip, settle
from ._router import NoRoute, Routed

if TYPE_CHECKING:
    from ._callstate import CallFacts
    from ._mailbox import Mailbox

__all__ = ["Posted", "post_run", "posts_runs", "routed_attempt", "same_target"]


def posts_runs(mailbox: Mailbox | None) -> bool:
    """Whether to queue a lane's run with `post_many`: not when a subclass overrides `post`
    alone (it wraps each post, for metrics or a filter, and must see every item)."""
    if not isinstance(mailbox, RunMailbox):
        return False
    mro = type(mailbox).__mro__
    owner = next((c for c in mro if "post" in vars(c)), object)
    owner_many = next((c for c in mro if "post_many" in vars(c)), object)
    return mro.index(owner_many) <= mro.index(owner)


@dataclass(frozen=True)
class Posted:
    """A mailbox post made for this job in its lane's run: None, or why it failed."""

    error: BaseException | None


async def post_run(
    mailbox: RunMailbox, facts: CallFacts, run: list[Job]
) -> list[tuple[Job, Posted]]:
    """Queue a run's items in one `post_many`, in order, after the checks each send would make
    alone (a call SID and a conversation id that disagree, a conversation known to be over:
    those jobs are settled here, never posted). The posted jobs, each with its outcome."""
    posting: list[Job] = []
    for job in run:
        try:
            await facts.check(job.call_sid, job.conversation_id)
        except CallMismatch as exc:
            settle(job.done, exc)
            continue
        if job.channel != "mailbox":  # named explicitly, the caller takes the risk
            over = await facts.over(job.call_sid, job.conversation_id)
            if over is not None:
                settle(job.done, over)
                continue
        posting.append(job)
    if not posting:
        return []
    sid = posting[0].call_sid
    assert sid is not None
    items = [job.event.model_dump(mode="json", exclude_none=True) for job in posting]
    outcomes: list[BaseException | None]
    try:
        queued = await mailbox.post_many(sid, items)
        full = MailboxFull(sid, getattr(mailbox, "max_items", len(items)))
        outcomes = [None] * queued + [full] * (len(items) - queued)
    except Exception as exc:  # MailboxUnavailable, or a mailbox of the user's own failing
        outcomes = [exc] * len(items)
    return [(job, Posted(error)) for job, error in zip(posting, outcomes, strict=True)]


def same_target(job: Job, first: Job) -> bool:
    return (job.call_sid, job.conversation_id) == (first.call_sid, first.conversation_id)


def routed_attempt(job: Job, outcome: Routed | NoRoute) -> Attempt:
    """The session channel's outcome for a job the router handed over (or could not)."""
    if isinstance(outcome, NoRoute):
        return Skip(f"no open session for this call in this process, and {outcome}")
    receipt = Receipt(
        "session",
        job.event.type,
        job.call_sid,
        outcome.conversation_id,
        worker=outcome.worker,
    )
    return outcome.ack, receipt
