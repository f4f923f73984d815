"""`Sender`: hand data to a live call through the best channel there is, or say why not.

Channels, tried in this order unless the caller names one: our own `session` (the registry, then
through the `RedisRouter` the session another worker holds), the `monitor` socket (contextual
updates only: it has no user_message or tool-result command, docs/protocol.md §11), then the
`mailbox` the call's tool drains; each is a `SendChannel` (`_channels`), and the sender walks
them. A call whose conversation is over (`done`, `failed`, `processing`) gets `ConversationOver`
from every channel, the mailbox included (a message left there would never be read), unless the
caller names the mailbox. Each call (call SID, else conversation id) has one ordered lane
(`_lanes`): sends are written in the order they were made, and a burst is neither lost nor
reordered. A lane holds at most `queue_size` messages waiting to be written; a send that finds it
full waits for room up to `send_timeout` and then raises `SendTimeout` (the message was not
sent). Writes are pipelined: the lane writes the next message while earlier ones wait for their
confirmation.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any

from typing_extensions import Self

from .._exceptions import CallSidResolverError
from ._callstate import CallFacts, describe
from ._channels import RunChannel, SendChannel, ViaMailbox, ViaMonitor, ViaRouter, ViaSession
from ._errors import (
    CallMismatch,
    ConfirmTimeout,
    ConversationOver,
    InvalidSend,
    NotLive,
    SenderError,
)
from ._lanes import Lanes
from ._protocol import (
    ClientEvent,
    ClientToolResult,
    ContextualUpdate,
    UserMessage,
    tool_result_text,
)
from ._records import CHANNELS, Channel, Job, Outcome, PendingWrite, Receipt, Skip, confirm, settle
from ._target import Target
from ._transport import Failure, bounded

if TYPE_CHECKING:
    from .._async.resolver import AsyncCallSidResolver
    from ._mailbox import Mailbox
    from ._monitor import MonitorChannel
    from ._registry import SessionRegistry
    from ._router import RedisRouter

__all__ = ["CHANNELS", "Channel", "Receipt", "Sender"]

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
        local = ViaSession(registry)
        only_mailbox = registry is None and router is None and monitor is None
        via_mailbox = ViaMailbox(mailbox, registry=registry, facts=self.facts, only=only_mailbox)
        via_router = None if router is None else ViaRouter(router, local)
        self._channels: dict[Channel, SendChannel] = {
            "session": local if via_router is None else via_router,
            "monitor": ViaMonitor(monitor),
            "mailbox": via_mailbox,
        }
        # The mailbox first: a job it takes in a run (named, or the only channel) never goes to
        # the router, and the two never take the same job.
        runs: list[RunChannel] = [via_mailbox] if via_router is None else [via_mailbox, via_router]
        self._lanes = Lanes(self._dispatch, runs, queue_size=queue_size, send_timeout=send_timeout)
        self._closed = False

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
        target = Target.of(call_sid=call_sid, conversation_id=conversation_id)
        if channel is not None and channel not in CHANNELS:
            raise InvalidSend(f"channel must be one of {', '.join(CHANNELS)}")
        done: Outcome = asyncio.get_running_loop().create_future()
        job = Job(event, target, channel, done)
        await self._lanes.enqueue(job)
        try:
            outcome = await asyncio.shield(done)
        except asyncio.CancelledError:
            job.cancelled = True  # not written yet: it never will be; written: it stays written
            raise
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    # -- the walk ----------------------------------------------------------------------------
    async def _dispatch(self, job: Job) -> None:
        """Offer the job to the channels in order; never raises (the outcome goes to the job's
        future).

        A channel that fails for any reason is a reason in `NotLive` and the next one is tried;
        only a conversation known to be over stops the walk.
        """
        reasons: dict[str, str] = {}
        errors: dict[str, BaseException] = {}
        try:
            await self.facts.check(job.target)
        except CallMismatch as exc:
            settle(job.done, exc)
            return
        walk = (job.channel,) if job.channel else CHANNELS
        for channel in (self._channels[name] for name in walk):
            try:
                outcome: Receipt | PendingWrite | BaseException
                outcome = await channel.offer(job, reasons)
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
                reasons[channel.name] = str(outcome)
                continue
            if isinstance(outcome, BaseException):
                reasons[channel.name] = describe(outcome)
                errors[channel.name] = outcome
                if not isinstance(outcome, CallSidResolverError):
                    logger.debug("%s channel failed", channel.name, exc_info=outcome)
                continue
            if isinstance(outcome, Receipt):
                settle(job.done, outcome)
                return
            batch, receipt = outcome.batch, outcome.receipt
            if receipt.worker is None:  # a routed write is bounded by the router's ack_timeout
                batch = bounded(batch, self.send_timeout, _late(job, receipt, self.send_timeout))
            batch.add_done_callback(functools.partial(confirm, job.done, receipt))
            return
        over = await self.facts.over(job.target) if job.channel != "mailbox" else None
        if over is not None:
            settle(job.done, over)
            return
        settle(job.done, NotLive(job.event.type, job.target.label, reasons, errors))

    # -- lifecycle -----------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Stop the lanes; sends not yet written fail. The channels stay yours to close."""
        self._closed = True
        await self._lanes.aclose()

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
    label = job.target.label
    return functools.partial(ConfirmTimeout, label, channel=receipt.channel, timeout=timeout)
