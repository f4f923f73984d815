"""The owner's side of `RedisRouter`: what a worker does with the messages on its channel.

Every message is decoded once into a typed record (`_router_messages`); a malformed one is
logged and dropped, and refused with an acknowledgement when its envelope is readable (no
`RouteTimeout` for its sender). A `Send` or a `Run` is written to the session this worker holds,
in the order published, and acknowledged once its writes are confirmed; one seen already (same
sender, same id: a client that reran the routing script after a lost reply) is dropped, so
nothing is written twice. Acknowledgements for this worker's own sends go to `acknowledged`.
"""

from __future__ import annotations

import collections
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._errors import SenderError
from ._router_messages import Ack, MalformedMessage, Run, RunAck, Send, decode
from ._transport import Batch, Failure

if TYPE_CHECKING:
    from ._registry import SessionRegistry

__all__ = ["Delivery", "RunReply"]

logger = logging.getLogger("callsid_resolver.live")
SEEN = 4096  # (sender, message id) pairs an owner remembers, to deliver each message once


class Delivery:
    """Handles the messages on worker `worker_id`'s channel; replies through `send`."""

    def __init__(
        self,
        worker_id: str,
        registry: SessionRegistry | None,
        send: Callable[[str, Ack | RunAck], None],
        acknowledged: Callable[[Ack | RunAck], None],
    ) -> None:
        self.worker_id = worker_id
        self.registry = registry
        self._send = send
        self._acknowledged = acknowledged
        self._seen: collections.OrderedDict[tuple[str, int], None] = collections.OrderedDict()

    async def handle(self, data: bytes | str) -> None:
        # Whatever arrives on our channel, the listener must survive it.
        try:
            message = decode(data)
        except MalformedMessage as exc:
            logger.warning("dropped a malformed router message on %s: %s", self.worker_id, exc)
            envelope = exc.envelope
            if envelope is not None and envelope.op == "send":  # refuse it: no RouteTimeout
                reply = Ack(id=envelope.id, sender=self.worker_id)
                self._send(envelope.sender, reply.failed(MalformedMessage("malformed")))
            elif envelope is not None and envelope.op == "run":
                refusal = RunAck(id=envelope.id, sender=self.worker_id, refused="MalformedMessage")
                self._send(envelope.sender, refusal)
            return
        try:
            if isinstance(message, (Ack, RunAck)):
                self._acknowledged(message)
            elif self._duplicate(message):
                logger.debug("dropped a repeated router message %d", message.id)
            elif isinstance(message, Run):
                await self._deliver_run(message)
            else:
                await self._deliver(message)
        except Exception:  # a bug here must cost one message, not the listener
            logger.exception("router %s could not handle message %d", self.worker_id, message.id)

    async def _deliver(self, message: Send) -> None:
        # Awaited in the listener, one message at a time: that is what keeps a call's order.
        reply = Ack(id=message.id, sender=self.worker_id)
        try:
            session = None
            if self.registry is not None:
                session = self.registry.get(call_sid=message.sid, conversation_id=message.cid)
            if session is None:
                target, kind = message.target, message.event.type
                self._send(
                    message.sender,
                    reply.model_copy(update={"error": "not_here", "target": target, "kind": kind}),
                )
                return
            batch = await session.write(message.event)
        except Exception as exc:
            self._send(message.sender, reply.failed(exc))
            return
        if batch is None:
            self._send(message.sender, reply)
        else:
            confirmed = functools.partial(self._reply_confirmed, message.sender, reply)
            batch.add_done_callback(confirmed)

    def _duplicate(self, message: Send | Run) -> bool:
        """Seen already: a client that retried a pipeline whose reply was lost ran the routing
        script twice. Message ids only grow per sender, and a repeat follows its original
        within seconds, so the last `SEEN` ids are enough to deliver each message once."""
        seen = (message.sender, message.id)
        if seen in self._seen:
            return True
        self._seen[seen] = None
        if len(self._seen) > SEEN:
            self._seen.popitem(last=False)
        return False

    async def _deliver_run(self, run: Run) -> None:
        # Awaited in the listener like `_deliver`: writes go out in run order, runs in order.
        reply = RunReply(run, self.worker_id, self._send)
        session = None
        if self.registry is not None:
            session = self.registry.get(call_sid=run.sid, conversation_id=run.cid)
        for position, event in enumerate(run.events, 1):
            if session is None:
                reply.fail(position, None)
                continue
            try:
                batch = await session.write(event)
            except Exception as exc:
                reply.fail(position, exc)
                continue
            if batch is not None:
                reply.wait(position, batch)
        reply.close()

    def _reply_confirmed(self, sender: str, reply: Ack, batch: Batch) -> None:
        if batch.cancelled():
            update = {"error": "failed", "detail": "confirmation cancelled"}
            self._send(sender, reply.model_copy(update=update))
            return
        failure: Failure | None = batch.result()
        if failure is None:
            self._send(sender, reply)
            return
        self._send(sender, reply.failed(failure()))


class RunReply:
    """The owner's one acknowledgement of a run, handed to `reply` once every write of the run
    has settled (`fail` or `wait` each event, then `close`)."""

    def __init__(self, run: Run, worker: str, reply: Callable[[str, RunAck], None]) -> None:
        self.run = run
        self.worker = worker
        self.reply = reply
        self.failed: list[Ack] = []
        self.waiting = 0
        self.closed = False

    def fail(self, position: int, error: BaseException | None) -> None:
        """Event `position` was not delivered: `error`, or (None) no session here for it."""
        ack = Ack(id=position, sender=self.worker)
        if error is None:
            kind = self.run.events[position - 1].type
            update = {"error": "not_here", "target": self.run.target, "kind": kind}
            self.failed.append(ack.model_copy(update=update))
        else:
            self.failed.append(ack.failed(error))

    def wait(self, position: int, batch: Batch) -> None:
        """Event `position` was written: its outcome is `batch`'s."""
        self.waiting += 1
        batch.add_done_callback(functools.partial(self._settled, position))

    def close(self) -> None:
        """Every event of the run was failed or waited for: reply once the writes settle."""
        self.closed = True
        self._maybe_send()

    def _settled(self, position: int, batch: Batch) -> None:
        self.waiting -= 1
        if batch.cancelled():
            self.fail(position, SenderError("confirmation cancelled"))
        else:
            failure: Failure | None = batch.result()
            if failure is not None:
                self.fail(position, failure())
        self._maybe_send()

    def _maybe_send(self) -> None:
        if self.closed and not self.waiting:
            self.failed.sort(key=lambda ack: ack.id)
            reply = RunAck(id=self.run.id, sender=self.worker, failed=self.failed)
            self.reply(self.run.sender, reply)
