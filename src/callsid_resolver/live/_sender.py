"""`Sender`: hand data to a live call through the best channel there is, or say why not.

Channels, tried in this order unless the caller names one: our own `session` (the registry, then
through the `RedisRouter` the session another worker holds), the `monitor` socket (contextual
updates only: it has no user_message or tool-result command, docs/protocol.md §11), then the
`mailbox` the call's tool drains. A call whose conversation is over (`done`, `failed`,
`processing`) gets `ConversationOver` from every channel, the mailbox included (a message left
there would never be read), unless the caller names the mailbox. Each call (call SID, else
conversation id) has one ordered lane: sends are written in the order they were made, and a burst
is neither lost nor reordered. A lane holds at most `queue_size` messages waiting to be written; a
send that finds it full waits for room up to `send_timeout` and then raises `SendTimeout` (the
message was not sent). Writes are pipelined: the lane writes the next message while earlier ones
wait for their confirmation.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from typing_extensions import Self

from .._core._callsid import validate_call_sid
from .._exceptions import CallSidResolverError
from ._callstate import CallFacts, describe
from ._errors import (
    CallMismatch,
    ConfirmTimeout,
    ConversationOver,
    InvalidSend,
    NotLive,
    SenderError,
    SendTimeout,
)
from ._lane_runs import Posted, post_run, posts_runs, routed_attempt, same_target
from ._mailbox import RunMailbox
from ._protocol import (
    ClientEvent,
    ClientToolResult,
    ContextualUpdate,
    MonitorCommand,
    UserMessage,
    tool_result_text,
)
from ._records import (
    CHANNELS,
    Attempt,
    Channel,
    Job,
    Lane,
    Outcome,
    Receipt,
    Skip,
    confirm,
    settle,
)
from ._router import NoRoute, Routed
from ._router_messages import MAX_RUN
from ._transport import Batch, Failure, bounded

if TYPE_CHECKING:
    from .._resolver import AsyncCallSidResolver
    from ._mailbox import Mailbox
    from ._monitor import MonitorChannel
    from ._registry import SessionRegistry
    from ._router import RedisRouter

__all__ = ["CHANNELS", "Channel", "Receipt", "Sender"]

ROUTED_RUN = MAX_RUN  # messages of one lane forwarded together at most
logger = logging.getLogger("callsid_resolver.live")


class Sender:
    """Delivers contextual updates, user messages and tool results to live calls.

    Give it the channels you have (at least one): `registry` (sessions this process opened),
    `router` (sessions other workers of the fleet opened, reached over Redis), `monitor` (calls
    ElevenLabs holds; Enterprise or the `realtime-monitoring` flag), `mailbox` (pulled by the
    agent's tool). `resolver` (else the monitor's or the registry's) tells a call SID's
    conversation and whether it is over; a status it reports live is checked again with a GET,
    at most once per `status_ttl` seconds per conversation, before anything goes to a mailbox.
    Every send returns a `Receipt` or raises a `SenderError`: `ConversationOver`, `NotLive`
    (with each channel's reason), `CallMismatch`, `SendTimeout`, `RouteTimeout` (the worker
    holding the session did not acknowledge), or, when a socket dropped after the message was
    written, `SessionClosed`/`MonitorError` with `sent=True`.
    """

    def __init__(
        self,
        *,
        registry: SessionRegistry | None = None,
        monitor: MonitorChannel | None = None,
        mailbox: Mailbox | None = None,
        router: RedisRouter | None = None,
        resolver: AsyncCallSidResolver | None = None,
        queue_size: int = 256,
        send_timeout: float = 10.0,
        status_ttl: float = 2.0,
    ) -> None:
        if registry is None and monitor is None and mailbox is None and router is None:
            raise ValueError(
                "a Sender needs at least one channel: registry=, router=, monitor= or mailbox="
            )
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.registry = registry
        self.monitor = monitor
        self.mailbox = mailbox
        self.router = router
        self.facts = CallFacts.of(
            resolver, monitor, registry, status_ttl=status_ttl, max_entries=4 * queue_size
        )
        self.resolver = self.facts.resolver
        self.queue_size = queue_size
        self.send_timeout = send_timeout
        self._lanes: dict[str, Lane] = {}
        self._closed = False
        self._posts_runs = posts_runs(mailbox)

    def __repr__(self) -> str:
        have = [n for n in CHANNELS if getattr(self, "registry" if n == "session" else n)]
        return f"<Sender channels={have} lanes={len(self._lanes)}>"

    # -- the public sends --------------------------------------------------------------------
    async def send_contextual_update(
        self,
        text: str,
        *,
        call_sid: str | None = None,
        conversation_id: str | None = None,
        context_id: str | None = None,
        channel: Channel | None = None,
    ) -> Receipt:
        """Add `text` to the agent's context without a reply (docs/protocol.md §11).

        Args:
            text: the update, e.g. `"Caller is a VIP"`.
            call_sid: the call's `system__call_sid`; resolved to its conversation when needed.
            conversation_id: the conversation, when you have it (skips the resolution).
            channel: force one channel (`"session"`, `"monitor"` or `"mailbox"`) instead of the
                first that reaches the call.
            context_id: updates sharing it replace each other (session channel only).

        Returns:
            A `Receipt` naming the channel that took it.

        Raises:
            NotLive: no channel reached the call (`.reasons` says why, per channel).
            SendTimeout: a channel took longer than the sender's timeout.
            RouteTimeout: the worker holding the session did not acknowledge in time.
        """
        event = ContextualUpdate(text=text, context_id=context_id)
        return await self.send(
            event, call_sid=call_sid, conversation_id=conversation_id, channel=channel
        )

    async def send_user_message(
        self,
        text: str,
        *,
        call_sid: str | None = None,
        conversation_id: str | None = None,
        channel: Channel | None = None,
    ) -> Receipt:
        """Send `text` as if the caller had said it: the agent answers it. Only a session carries
        it (the monitor and the mailbox have no such message).

        Args:
            text: the message.
            call_sid: the call's `system__call_sid`; resolved to its conversation when needed.
            conversation_id: the conversation, when you have it (skips the resolution).
            channel: force one channel (`"session"`, `"monitor"` or `"mailbox"`) instead of the
                first that reaches the call.

        Returns:
            A `Receipt` naming the channel that took it.

        Raises:
            NotLive: no channel reached the call (`.reasons` says why, per channel).
            SendTimeout: a channel took longer than the sender's timeout.
            RouteTimeout: the worker holding the session did not acknowledge in time.
        """
        event = UserMessage(text=text)
        return await self.send(
            event, call_sid=call_sid, conversation_id=conversation_id, channel=channel
        )

    async def send_tool_result(
        self,
        tool_call_id: str,
        result: Any,
        *,
        is_error: bool = False,
        call_sid: str | None = None,
        conversation_id: str | None = None,
        channel: Channel | None = None,
    ) -> Receipt:
        """Answer a client tool call (`client_tool_call`) of the agent.

        Args:
            tool_call_id: the id of the agent's `client_tool_call`.
            result: the result; anything but a string is sent as JSON text.
            is_error: tell the agent the tool failed.
            call_sid: the call's `system__call_sid`; resolved to its conversation when needed.
            conversation_id: the conversation, when you have it (skips the resolution).
            channel: force one channel (`"session"`, `"monitor"` or `"mailbox"`) instead of the
                first that reaches the call.

        Returns:
            A `Receipt` naming the channel that took it.

        Raises:
            NotLive: no channel reached the call (`.reasons` says why, per channel).
            SendTimeout: a channel took longer than the sender's timeout.
            RouteTimeout: the worker holding the session did not acknowledge in time.
        """
        event = ClientToolResult(
            tool_call_id=tool_call_id, result=tool_result_text(result), is_error=is_error
        )
        return await self.send(
            event, call_sid=call_sid, conversation_id=conversation_id, channel=channel
        )

    async def send(
        self,
        event: ClientEvent,
        *,
        call_sid: str | None = None,
        conversation_id: str | None = None,
        channel: Channel | None = None,
    ) -> Receipt:
        """Deliver any client event; see the class docstring for the outcomes."""
        if self._closed:
            raise SenderError("the sender is closed")
        if call_sid is not None:
            call_sid = validate_call_sid(call_sid)
        elif conversation_id is None:
            raise InvalidSend("give call_sid or conversation_id")
        if channel is not None and channel not in CHANNELS:
            raise InvalidSend(f"channel must be one of {', '.join(CHANNELS)}")
        done: Outcome = asyncio.get_running_loop().create_future()
        job = Job(event, call_sid, conversation_id, channel, done)
        await self._enqueue(job, call_sid or f"conversation:{conversation_id}")
        try:
            outcome = await asyncio.shield(done)
        except asyncio.CancelledError:
            job.cancelled = True  # not written yet: it never will be; written: it stays written
            raise
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    # -- ordering and backpressure ---------------------------------------------------------
    async def _enqueue(self, job: Job, key: str) -> None:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane()
            lane.task = asyncio.create_task(self._run(key, lane), name="callsid-live-lane")
        if not lane.waiting and len(lane.jobs) < self.queue_size:
            lane.jobs.append(job)  # no await since the lane lookup: order is call order
            return
        admitted = job.admitted = asyncio.get_running_loop().create_future()
        lane.waiting.append(job)
        try:
            await asyncio.wait_for(asyncio.shield(admitted), self.send_timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
            if admitted.done():  # admitted as the timer fired: it is queued, carry on
                if isinstance(exc, asyncio.CancelledError):
                    job.cancelled = True
                    raise
                return
            lane.waiting.remove(job)
            admitted.cancel()
            if isinstance(exc, asyncio.CancelledError):
                raise
            target = job.call_sid or str(job.conversation_id)
            raise SendTimeout(
                target, timeout=self.send_timeout, queue_size=self.queue_size
            ) from None

    async def _run(self, key: str, lane: Lane) -> None:
        try:
            while lane.jobs:
                job = lane.jobs.popleft()
                self._admit(lane)
                if job.cancelled:
                    continue
                if self._goes_to_mailbox(job):
                    await self._dispatch_posted(self._run_of(lane, job, self._goes_to_mailbox))
                    continue
                if not self._goes_to_another_worker(job):
                    await self._dispatch(job)
                    continue
                # A run of messages for a session on another worker leaves as one router
                # message (one Redis round trip, one acknowledgement), in lane order.
                await self._dispatch_routed(self._run_of(lane, job, self._goes_to_another_worker))
        finally:
            # Reached with both deques empty, or on `aclose()`: fail whatever is left.
            if self._lanes.get(key) is lane:
                del self._lanes[key]
            for job in (*lane.jobs, *lane.waiting):
                settle(job.done, SenderError("the sender was closed before this was sent"))

    def _admit(self, lane: Lane) -> None:
        while lane.waiting and len(lane.jobs) < self.queue_size:
            admitted = lane.waiting.popleft()
            lane.jobs.append(admitted)
            assert admitted.admitted is not None
            admitted.admitted.set_result(None)

    def _run_of(self, lane: Lane, job: Job, joins: Callable[[Job], bool]) -> list[Job]:
        """`job` and the jobs after it in the lane that go the same way, up to `ROUTED_RUN`."""
        run = [job]
        while lane.jobs and len(run) < ROUTED_RUN and same_target(lane.jobs[0], job):
            if not joins(lane.jobs[0]):
                break
            following = lane.jobs.popleft()
            self._admit(lane)
            if not following.cancelled:
                run.append(following)
        return run

    def _goes_to_mailbox(self, job: Job) -> bool:
        """Known before trying anything: the mailbox is named, or it is the only channel."""
        if not self._posts_runs or job.call_sid is None:
            return False
        if isinstance(job.event, ClientToolResult):
            return False
        if job.channel == "mailbox":
            return True
        only = self.registry is None and self.router is None and self.monitor is None
        return job.channel is None and only

    async def _dispatch_posted(self, run: list[Job]) -> None:
        """A lane's run for the mailbox, queued in one step (one Redis round trip), in order;
        every job then walks `_dispatch` as usual, with its post already made."""
        assert isinstance(self.mailbox, RunMailbox)
        for job, posted in await post_run(self.mailbox, self.facts, run):
            await self._dispatch(job, posted=posted)

    def _goes_to_another_worker(self, job: Job) -> bool:
        if self.router is None or job.channel not in (None, "session"):
            return False
        if self.registry is None:
            return True
        return self.registry.get(call_sid=job.call_sid, conversation_id=job.conversation_id) is None

    async def _dispatch_routed(self, run: list[Job]) -> None:
        assert self.router is not None
        first = run[0]
        outcomes: list[Routed | NoRoute]
        try:
            outcomes = await self.router.forward_run(
                [job.event for job in run],
                call_sid=first.call_sid,
                conversation_id=first.conversation_id,
            )
        except NoRoute as exc:
            outcomes = [exc] * len(run)
        except Exception as exc:  # a bug must cost this run, not the lane
            logger.debug("router failed", exc_info=exc)
            outcomes = [NoRoute(describe(exc))] * len(run)
        for job, outcome in zip(run, outcomes, strict=True):
            await self._dispatch(job, session_attempt=routed_attempt(job, outcome))

    # -- channels ------------------------------------------------------------------------------
    async def _dispatch(
        self, job: Job, session_attempt: Attempt | None = None, posted: Posted | None = None
    ) -> None:
        """Try the channels in order; never raises (the outcome goes to the job's future).

        `session_attempt` is the session channel's outcome when it was tried already, `posted`
        the mailbox's when the post was made already (checked for over and mismatch). A channel
        that fails for any reason is a reason in `NotLive` and the next one is tried; only a
        conversation known to be over stops the walk.
        """
        reasons: dict[str, str] = {}
        errors: dict[str, BaseException] = {}
        try:
            await self.facts.check(job.call_sid, job.conversation_id)
        except CallMismatch as exc:
            settle(job.done, exc)
            return
        for channel in (job.channel,) if job.channel else CHANNELS:
            outcome: Attempt
            if channel == "session" and session_attempt is not None:
                outcome = session_attempt
            else:
                try:
                    outcome = await self._try(channel, job, reasons, posted)
                except Exception as exc:
                    outcome = exc
            # Over, or written to a socket that then dropped: another channel could only deliver
            # it a second time, so the caller gets the error and decides.
            if isinstance(outcome, ConversationOver) or (
                isinstance(outcome, SenderError) and getattr(outcome, "sent", False) is True
            ):
                settle(job.done, outcome)
                return
            if isinstance(outcome, Skip):
                reasons[channel] = str(outcome)
                continue
            if isinstance(outcome, BaseException):
                reasons[channel] = describe(outcome)
                errors[channel] = outcome
                if not isinstance(outcome, CallSidResolverError):
                    logger.debug("%s channel failed", channel, exc_info=outcome)
                continue
            if isinstance(outcome, Receipt):
                settle(job.done, outcome)
            else:
                batch, receipt = outcome
                if receipt.worker is None:  # routed: bounded by the router's ack_timeout
                    late = _late(job, receipt, self.send_timeout)
                    batch = bounded(batch, self.send_timeout, late)
                batch.add_done_callback(functools.partial(confirm, job.done, receipt))
            return
        over = None
        if job.channel != "mailbox":
            over = await self.facts.over(job.call_sid, job.conversation_id)
        if over is not None:
            settle(job.done, over)
            return
        target = f"call {job.call_sid}" if job.call_sid else f"conversation {job.conversation_id}"
        settle(job.done, NotLive(job.event.type, target, reasons, errors))

    async def _try(
        self, channel: Channel, job: Job, skipped: dict[str, str], posted: Posted | None
    ) -> Receipt | tuple[Batch, Receipt]:
        if channel == "session":
            return await self._via_session(job, skipped)
        if channel == "monitor":
            return await self._via_monitor(job, skipped)
        return await self._via_mailbox(job, skipped, posted)

    async def _via_session(
        self, job: Job, skipped: dict[str, str]
    ) -> Receipt | tuple[Batch, Receipt]:
        # A session on another worker never gets here: `_run` sends those through the router.
        if self.registry is None:
            raise Skip("no session registry configured")
        session = self.registry.get(call_sid=job.call_sid, conversation_id=job.conversation_id)
        if session is None:
            raise Skip("no open session for this call in this process")
        batch = await session._write(job.event)
        receipt = Receipt(
            "session",
            job.event.type,
            job.call_sid,
            session.conversation_id,
            batch is not None,
            skipped=dict(skipped),
        )
        return receipt if batch is None else (batch, receipt)

    async def _via_monitor(self, job: Job, skipped: dict[str, str]) -> tuple[Batch, Receipt]:
        if not isinstance(job.event, ContextualUpdate):
            raise Skip(
                f"the monitor socket takes contextual updates only, not {job.event.type} "
                "(no such monitor command)"
            )
        if self.monitor is None:
            raise Skip("no monitor channel configured")
        cid = await self.monitor.conversation_id_for(
            call_sid=job.call_sid, conversation_id=job.conversation_id
        )
        batch = await self.monitor.write(cid, MonitorCommand.contextual_update(job.event.text))
        return batch, Receipt("monitor", job.event.type, job.call_sid, cid, skipped=dict(skipped))

    async def _via_mailbox(
        self, job: Job, skipped: dict[str, str], posted: Posted | None = None
    ) -> Receipt:
        if isinstance(job.event, ClientToolResult):
            raise Skip("a client tool result can only answer on the session that got the call")
        if self.mailbox is None:
            raise Skip("no mailbox configured")
        sid = job.call_sid
        if sid is None and self.registry is not None and job.conversation_id is not None:
            sid = self.registry.call_sid_of(job.conversation_id)
        if sid is None:
            raise Skip("the mailbox is keyed by call SID and none was given")
        if posted is not None:  # in a run: checked and posted already
            if posted.error is not None:
                raise posted.error
        else:
            if job.channel != "mailbox":  # named explicitly, the caller takes the risk
                over = await self.facts.over(job.call_sid, job.conversation_id)
                if over is not None:
                    raise over
            await self.mailbox.post(sid, job.event.model_dump(mode="json", exclude_none=True))
        cid = job.conversation_id or (await self.facts.conversation_of(sid))[0]
        return Receipt("mailbox", job.event.type, sid, cid, skipped=dict(skipped))

    # -- lifecycle -----------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Stop the lanes; sends not yet written fail. The channels stay yours to close."""
        self._closed = True
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _late(job: Job, receipt: Receipt, timeout: float) -> Failure:
    target = f"call {job.call_sid}" if job.call_sid else f"conversation {job.conversation_id}"
    return functools.partial(ConfirmTimeout, target, channel=receipt.channel, timeout=timeout)
