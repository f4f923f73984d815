"""The ways a `Sender` reaches a live call, each behind one `SendChannel` protocol.

A channel is offered a job (an event for a `Target`) and answers with a `Receipt` (delivered), a
`PendingWrite` (written; confirmed or failed later), `Skip` (it cannot take this one: the reason
goes into `NotLive`) or an error. The `Sender` walks its channels in order (`CHANNELS`):

* `ViaSession`: a session this process holds (the `SessionRegistry`);
* `ViaRouter`: a session another worker holds, through the `RedisRouter` (it stands in the
  session's place in the walk, and falls back to `ViaSession` for calls held here);
* `ViaMonitor`: the monitoring socket (contextual updates only: it has no user_message or tool
  result command, docs/protocol.md §11);
* `ViaMailbox`: the mailbox the call's tool drains.

A `RunChannel` also takes a lane's run of jobs together (one router message, one mailbox
script) in `prepare_run`, before each job's walk; the walk then finds the job handed over.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from ._callstate import CallFacts, describe
from ._errors import CallMismatch, MailboxFull
from ._mailbox import RunMailbox
from ._protocol import ClientToolResult, ContextualUpdate, MonitorCommand
from ._records import Attempt, Channel, Job, PendingWrite, Posted, Receipt, Skip, settle
from ._router_acks import NoRoute, Routed

if TYPE_CHECKING:
    from ._mailbox import Mailbox
    from ._monitor import MonitorChannel
    from ._registry import SessionRegistry
    from ._router import RedisRouter

__all__ = [
    "RunChannel",
    "SendChannel",
    "ViaMailbox",
    "ViaMonitor",
    "ViaRouter",
    "ViaSession",
    "posts_runs",
]

logger = logging.getLogger("callsid_resolver.live")


class SendChannel(Protocol):
    """One way to a live call."""

    @property
    def name(self) -> Channel:
        """The channel a `Receipt` and `NotLive.reasons` name."""
        ...

    async def offer(self, job: Job, skipped: Mapping[str, str]) -> Receipt | PendingWrite:
        """Deliver `job.event` to `job.target`, or raise `Skip` (cannot take it) or the error.

        `skipped` holds why the channels walked before this one did not take it (for the
        receipt)."""
        ...


class RunChannel(SendChannel, Protocol):
    """A channel that takes consecutive jobs of one lane together."""

    def takes_run(self, job: Job) -> bool:
        """Whether `job` goes this way in a run, known before trying anything."""
        ...

    async def prepare_run(self, run: list[Job]) -> list[Job]:
        """Hand `run` (jobs for one target, in lane order) over in one step; the jobs whose
        channels are to be walked next (any other is settled already)."""
        ...


class ViaSession:
    """The sessions this process holds."""

    def __init__(self, registry: SessionRegistry | None) -> None:
        self.registry = registry

    @property
    def name(self) -> Channel:
        """Always `"session"`."""
        return "session"

    async def offer(self, job: Job, skipped: Mapping[str, str]) -> Receipt | PendingWrite:
        """Write to the call's session in this process (see `SendChannel.offer`)."""
        if self.registry is None:
            raise Skip("no session registry configured")
        target = job.target
        session = self.registry.get(
            call_sid=target.call_sid, conversation_id=target.conversation_id
        )
        if session is None:
            raise Skip("no open session for this call in this process")
        batch = await session.write(job.event)
        receipt = Receipt(
            "session",
            job.event.type,
            target.call_sid,
            session.conversation_id,
            batch is not None,
            skipped=dict(skipped),
        )
        return receipt if batch is None else PendingWrite(batch, receipt)


class ViaRouter:
    """Sessions held by other workers of the fleet, reached through a `RedisRouter`; a call
    held in this process goes to `local`."""

    def __init__(self, router: RedisRouter, local: ViaSession) -> None:
        self.router = router
        self.local = local

    @property
    def name(self) -> Channel:
        """Always `"session"`: the router reaches sessions, just elsewhere."""
        return "session"

    def takes_run(self, job: Job) -> bool:
        """A job for the session (named or not) that no session in this process holds."""
        if job.channel not in (None, "session"):
            return False
        registry = self.local.registry
        if registry is None:
            return True
        target = job.target
        return (
            registry.get(call_sid=target.call_sid, conversation_id=target.conversation_id) is None
        )

    async def prepare_run(self, run: list[Job]) -> list[Job]:
        """Forward the run as one router message (one Redis round trip, one acknowledgement)."""
        target = run[0].target
        outcomes: list[Routed | NoRoute]
        try:
            outcomes = await self.router.forward_run(
                [job.event for job in run],
                call_sid=target.call_sid,
                conversation_id=target.conversation_id,
            )
        except NoRoute as exc:
            outcomes = [exc] * len(run)
        except Exception as exc:  # a bug must cost this run, not the lane
            logger.debug("router failed", exc_info=exc)
            outcomes = [NoRoute(describe(exc))] * len(run)
        for job, outcome in zip(run, outcomes, strict=True):
            job.routed = _routed_attempt(job, outcome)
        return run

    async def offer(self, job: Job, skipped: Mapping[str, str]) -> Receipt | PendingWrite:
        """What the router made of the job in its run; else this process's session."""
        if job.routed is None:
            return await self.local.offer(job, skipped)
        if isinstance(job.routed, BaseException):
            raise job.routed
        return job.routed


def _routed_attempt(job: Job, outcome: Routed | NoRoute) -> Attempt:
    if isinstance(outcome, NoRoute):
        return Skip(f"no open session for this call in this process, and {outcome}")
    receipt = Receipt(
        "session",
        job.event.type,
        job.target.call_sid,
        outcome.conversation_id,
        worker=outcome.worker,
    )
    return PendingWrite(outcome.ack, receipt)


class ViaMonitor:
    """The monitoring sockets of a `MonitorChannel` (contextual updates only)."""

    def __init__(self, monitor: MonitorChannel | None) -> None:
        self.monitor = monitor

    @property
    def name(self) -> Channel:
        """Always `"monitor"`."""
        return "monitor"

    async def offer(self, job: Job, skipped: Mapping[str, str]) -> PendingWrite:
        """Write the update on the conversation's monitoring socket (see `SendChannel.offer`)."""
        if not isinstance(job.event, ContextualUpdate):
            raise Skip(
                f"the monitor socket takes contextual updates only, not {job.event.type} "
                "(no such monitor command)"
            )
        if self.monitor is None:
            raise Skip("no monitor channel configured")
        target = job.target
        cid = await self.monitor.conversation_id_for(
            call_sid=target.call_sid, conversation_id=target.conversation_id
        )
        batch = await self.monitor.write(cid, MonitorCommand.contextual_update(job.event.text))
        receipt = Receipt("monitor", job.event.type, target.call_sid, cid, skipped=dict(skipped))
        return PendingWrite(batch, receipt)


class ViaMailbox:
    """A `Mailbox`, keyed by call SID. It is never walked for a conversation known to be over
    (a message left there would never be read), unless the caller named it.

    `only` says the mailbox is the sender's only channel: its jobs then go in runs unnamed too.
    """

    def __init__(
        self,
        mailbox: Mailbox | None,
        *,
        registry: SessionRegistry | None,
        facts: CallFacts,
        only: bool,
    ) -> None:
        self.mailbox = mailbox
        self.registry = registry
        self.facts = facts
        self.only = only
        self.runs = posts_runs(mailbox)

    @property
    def name(self) -> Channel:
        """Always `"mailbox"`."""
        return "mailbox"

    def takes_run(self, job: Job) -> bool:
        """Known before trying anything: the mailbox is named, or it is the only channel."""
        if not self.runs or job.target.call_sid is None:
            return False
        if isinstance(job.event, ClientToolResult):
            return False
        if job.channel == "mailbox":
            return True
        return job.channel is None and self.only

    async def prepare_run(self, run: list[Job]) -> list[Job]:
        """Queue the run's items in one `post_many`, in order, after the checks each send would
        make alone (a call SID and a conversation id that disagree, a conversation known to be
        over: those jobs are settled here, never posted)."""
        assert isinstance(self.mailbox, RunMailbox)
        posting: list[Job] = []
        for job in run:
            try:
                await self.facts.check(job.target)
            except CallMismatch as exc:
                settle(job.done, exc)
                continue
            if job.channel != "mailbox":  # named explicitly, the caller takes the risk
                over = await self.facts.over(job.target)
                if over is not None:
                    settle(job.done, over)
                    continue
            posting.append(job)
        if not posting:
            return []
        sid = posting[0].target.call_sid
        assert sid is not None
        items = [job.event.model_dump(mode="json", exclude_none=True) for job in posting]
        outcomes: list[BaseException | None]
        try:
            queued = await self.mailbox.post_many(sid, items)
            full = MailboxFull(sid, getattr(self.mailbox, "max_items", len(items)))
            outcomes = [None] * queued + [full] * (len(items) - queued)
        except Exception as exc:  # MailboxUnavailable, or a mailbox of the user's own failing
            outcomes = [exc] * len(items)
        for job, error in zip(posting, outcomes, strict=True):
            job.posted = Posted(error)
        return posting

    async def offer(self, job: Job, skipped: Mapping[str, str]) -> Receipt:
        """Post the event for the call's tool to drain (see `SendChannel.offer`); a job posted
        in its run already gets that post's outcome."""
        if isinstance(job.event, ClientToolResult):
            raise Skip("a client tool result can only answer on the session that got the call")
        if self.mailbox is None:
            raise Skip("no mailbox configured")
        target = job.target
        sid = target.call_sid
        if sid is None and self.registry is not None and target.conversation_id is not None:
            sid = self.registry.call_sid_of(target.conversation_id)
        if sid is None:
            raise Skip("the mailbox is keyed by call SID and none was given")
        if job.posted is not None:
            if job.posted.error is not None:
                raise job.posted.error
        else:
            if job.channel != "mailbox":  # named explicitly, the caller takes the risk
                over = await self.facts.over(target)
                if over is not None:
                    raise over
            await self.mailbox.post(sid, job.event.model_dump(mode="json", exclude_none=True))
        cid = target.conversation_id or (await self.facts.conversation_of(sid))[0]
        return Receipt("mailbox", job.event.type, sid, cid, skipped=dict(skipped))


def posts_runs(mailbox: Mailbox | None) -> bool:
    """Whether to queue a lane's run with `post_many`: not when a subclass overrides `post`
    alone (it wraps each post, for metrics or a filter, and must see every item)."""
    if not isinstance(mailbox, RunMailbox):
        return False
    mro = type(mailbox).__mro__
    owner = next((c for c in mro if "post" in vars(c)), object)
    owner_many = next((c for c in mro if "post_many" in vars(c)), object)
    return mro.index(owner_many) <= mro.index(owner)
