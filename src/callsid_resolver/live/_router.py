"""`RedisRouter`: a send made on any worker of a fleet reaches the worker that holds the session.

A custom bridge keeps each call's Agents WebSocket in one process, while the tool call that
carries the call SID lands on any process. The router joins the two over Redis:

* **Ownership.** A session registered in this worker's `SessionRegistry` is announced in Redis
  with a lease (`lease`, 10 s by default) that a heartbeat renews (`_router_leases`). Closing
  the session withdraws it; a worker that dies stops renewing, so its calls are forgotten within
  one lease.
* **Delivery.** Every worker subscribes to its own pub/sub channel. A send is one script on
  Redis: read the owner, publish the message to the owner's channel, and if nobody listens there
  (the owner's connection is gone: it died) delete the stale ownership and say so. Sends made
  while the previous batch was out go together in one pipeline, in order. The owner writes
  the messages to its session in the order they were published and publishes an acknowledgement
  back once the write is confirmed. A lane's run of sends travels as one message (a `Run`,
  acknowledged once by a `RunAck`), so a burst costs Redis a few messages, not one per send.
  The sender learns `Receipt`, `NotLive` (nobody holds the call, or the holder is gone),
  `SessionClosed`, or `RouteTimeout` (no acknowledgement in `ack_timeout`: the owner froze or
  lost Redis; the message may have arrived). Never silence.

Pub/sub is at-most-once and reaches only subscribers connected now. That is right for a live call
(a message for a call nobody holds must fail now, not wait for a worker that may never come), and
the acknowledgement turns "at most once" into "and you know which".

Faults. Anyone with access to the Redis can publish on a worker's channel: every message is
decoded once into a typed record (`_router_messages`), and a malformed one is logged and dropped
(a send whose envelope is readable is refused with an acknowledgement) without ending the
listener. Should the listener end anyway, the worker withdraws its leases, so senders get
`NotLive` at once instead of `RouteTimeout` for every send. A Redis error never reaches a caller
raw: a send gets `NoRoute` (a `SenderError`; the `Sender` falls back to its next channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from typing_extensions import Self

from .._core._keys import DEFAULT_NAMESPACE, Keys
from .._redis_support import redis_errors, redis_reason
from ._errors import RouteTimeout, SenderError
from ._protocol import ClientEvent
from ._router_acks import NoRoute, PendingAcks, Routed
from ._router_leases import Leases
from ._router_messages import (
    ROUTE,
    Ack,
    RunAck,
    chunk_run,
    encode_run,
    parse_owner,
    route_key,
)
from ._router_owner import Delivery
from ._router_redis import Outbox, Wire
from ._target import Target

if TYPE_CHECKING:
    import redis.asyncio
    import redis.asyncio.cluster

    from ._registry import SessionRegistry

__all__ = ["NoRoute", "RedisRouter", "Routed"]

logger = logging.getLogger("callsid_resolver.live")

DEFAULT_LEASE = 10.0
DEFAULT_ACK_TIMEOUT = 5.0
_WORKER_ID = re.compile(r"^\S{1,200}$")


class RedisRouter:
    """Lets a `Sender` on any worker reach sessions held by other workers (`Sender(router=...)`).

    Give it a `redis.asyncio.Redis` client (or a `redis.asyncio.cluster.RedisCluster`: Redis
    >= 7, sharded pub/sub, see `Wire`) and, on workers that hold sessions, their
    `SessionRegistry`; use it as an async context manager (or `start()`/`aclose()`). The client
    stays yours to close. Its keys and channels are those of `namespace` (`Keys.route_sid`,
    `route_conversation`, `worker_channel`): workers that reach each other share one. On a
    client that retries a lost reply (redis-py's default) a routing script may run twice: owners
    drop a message id they have seen, so nothing is written twice.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster,
        registry: SessionRegistry | None = None,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        worker_id: str | None = None,
        lease: float = DEFAULT_LEASE,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
    ) -> None:
        if lease <= 0 or ack_timeout <= 0:
            raise ValueError("lease and ack_timeout must be positive")
        worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        if not _WORKER_ID.match(worker_id):
            raise ValueError("worker_id must be 1 to 200 characters without whitespace")

        self.client = client
        self.registry = registry
        self.namespace = namespace
        self.keys = Keys(namespace)
        self.worker_id = worker_id
        self.lease = lease
        self.ack_timeout = ack_timeout
        self._redis_error = redis_errors()
        self._route = client.register_script(ROUTE)
        self._wire = Wire(cast("redis.asyncio.Redis", client))  # the same commands, by slot
        self._leases = Leases(
            cast("redis.asyncio.Redis", client),
            keys=self.keys,
            worker_id=worker_id,
            lease=lease,
        )
        self._channel_prefix = self.keys.worker_channel_prefix
        self._pending = PendingAcks()
        # Ids grow across restarts too (a worker_id may be reused): owners dedupe on them.
        self._ids = itertools.count(time.time_ns())
        self._outgoing: Outbox[tuple[str, str, asyncio.Future[Any]]] = Outbox(self._publish)
        self._replies: Outbox[tuple[str, str]] = Outbox(self._publish_replies)
        self._delivery = Delivery(worker_id, registry, self._reply, self._pending.acknowledged)
        self._tasks: set[asyncio.Task[None]] = set()
        self._pubsub: Any = None
        self._started = False

    def __repr__(self) -> str:
        return (
            f"<RedisRouter worker={self.worker_id!r} owned={len(self._leases.owned)} "
            f"pending={len(self._pending)}>"
        )

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Subscribe, then announce the registry's sessions (never the other way round: a
        worker announced before it listens would look dead to the first send)."""
        if self._started:
            return
        pubsub: Any = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            await self._wire.load([self._route, *self._leases.scripts])  # EVALSHA from here on
            await self._wire.subscribe(pubsub, self.keys.worker_channel(self.worker_id))
        except self._redis_error as exc:
            with contextlib.suppress(*self._redis_error):
                await pubsub.aclose()
            raise SenderError(f"the router could not start: {redis_reason(exc)}") from None
        self._pubsub = pubsub
        self._started = self._leases.active = True
        self._spawn(self._listen(), "callsid-router-listen")
        for coroutine in (self._outgoing.run(), self._replies.run(), self._leases.heartbeat()):
            self._spawn(coroutine)
        if self.registry is not None:
            self.registry.add_listener(self)
            for call_sid, conversation_id in self.registry.calls().items():
                await self.session_registered(call_sid, conversation_id)

    async def aclose(self) -> None:
        """Withdraw this worker's sessions, stop listening, fail unacknowledged sends."""
        if not self._started:
            return
        self._started = self._leases.active = False
        if self.registry is not None:
            self.registry.remove_listener(self)
        await self._leases.withdraw(self._leases.take_all())
        await asyncio.gather(*self._withdrawing(), return_exceptions=True)
        await self._replies.drain()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for _, _, routed in self._outgoing.take():
            if not routed.done():
                routed.set_exception(NoRoute("the router closed"))
        self._pending.settle_all(SenderError("the router closed before the acknowledgement"))
        with contextlib.suppress(*self._redis_error):
            await self._pubsub.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- ownership (the registry tells us) --------------------------------------------------
    async def session_registered(self, call_sid: str, conversation_id: str) -> None:
        """Announce that this worker holds `call_sid`'s session (the registry calls it)."""
        await self._leases.announce(call_sid, conversation_id)

    def session_dropped(self, call_sid: str, conversation_id: str) -> None:
        """Withdraw this worker's claim on `call_sid` (the registry calls it)."""
        self._leases.forget(call_sid, conversation_id)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # closed outside an event loop: the lease expires instead
        withdrawal = self._leases.withdraw({call_sid: conversation_id})
        self._spawn(withdrawal, "callsid-router-withdraw")

    # -- sending (this worker is the sender) ------------------------------------------------
    async def owner(
        self, *, call_sid: str | None = None, conversation_id: str | None = None
    ) -> str | None:
        """The worker that holds the session of this call right now, or None.

        Raises `NoRoute` (a `SenderError`) when Redis cannot be asked."""
        key = route_key(self.keys, Target.of(call_sid=call_sid, conversation_id=conversation_id))
        try:
            raw = await self.client.get(key)
        except self._redis_error as exc:
            raise NoRoute(redis_reason(exc)) from None
        return parse_owner(raw)[0] if raw is not None else None

    async def forward(
        self,
        event: ClientEvent,
        *,
        call_sid: str | None = None,
        conversation_id: str | None = None,
    ) -> Routed:
        """Publish `event` to the worker holding the call; raises `NoRoute` when there is none.

        Awaiting `Routed.ack` gives None (acknowledged) or a callable that builds the error.
        """
        outcome = (
            await self.forward_run([event], call_sid=call_sid, conversation_id=conversation_id)
        )[0]
        if isinstance(outcome, NoRoute):
            raise outcome
        return outcome

    async def forward_run(
        self,
        events: Sequence[ClientEvent],
        *,
        call_sid: str | None = None,
        conversation_id: str | None = None,
    ) -> list[Routed | NoRoute]:
        """Publish `events`, in this order, to the worker holding the call, as one run.

        The run crosses Redis as one message (cut at `MAX_RUN` events or `MAX_RUN_SIZE`
        characters) and is acknowledged once, when the owner's writes have all settled. Returns
        one outcome per event: its `Routed`, or the `NoRoute` that says why it was not handed
        over (nobody holds the call, an event type that cannot be routed, Redis unavailable).
        `Sender` calls this for each lane's run of messages bound for another worker.
        """
        if not self._started:
            raise NoRoute("the router is not started")
        if not self._leases.active:  # no acknowledgement could reach us: fail now, not later
            raise NoRoute("this worker's router stopped listening")
        target = Target.of(call_sid=call_sid, conversation_id=conversation_id)
        key = route_key(self.keys, target)
        outcomes: list[Routed | NoRoute | None] = [None] * len(events)
        chunks, refused = chunk_run(events)
        for position in refused:
            why = f"{events[position].type} cannot be routed to another worker"
            outcomes[position] = NoRoute(why)
        sent = []
        for chunk in chunks:
            message_id = next(self._ids)
            # Pending before publishing: the acknowledgement may be read before the script returns.
            acks = self._pending.expect(message_id, len(chunk))
            routed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            message = encode_run(message_id, self.worker_id, target, [e for _, e in chunk])
            self._outgoing.put((key, message, routed))  # every chunk in one pipeline, in order
            sent.append((message_id, chunk, acks, routed))
        for message_id, chunk, acks, routed in sent:
            result: tuple[str, str | None] | NoRoute
            try:
                result = await self._handed_over(message_id, routed, target)
            except NoRoute as exc:
                result = exc
            for (position, _), ack in zip(chunk, acks, strict=True):
                if isinstance(result, NoRoute):
                    outcomes[position] = result
                else:
                    outcomes[position] = Routed(result[0], result[1], ack)
        return [outcome or NoRoute("not sent") for outcome in outcomes]

    async def _handed_over(
        self, message_id: int, routed: asyncio.Future[Any], target: Target
    ) -> tuple[str, str | None]:
        """The owner (worker, conversation id) a run reached; raises `NoRoute` otherwise, and
        starts the acknowledgement's timer."""
        try:
            found = await routed
        except self._redis_error as exc:
            self._pending.forget(message_id)
            raise NoRoute(redis_reason(exc)) from None
        except BaseException:
            self._pending.forget(message_id)
            raise
        if found is None:
            self._pending.forget(message_id)
            raise NoRoute("no worker of the fleet holds a session for this call")
        (worker, owned_conversation), receivers = parse_owner(found[0]), int(found[1])
        if receivers == 0:
            self._pending.forget(message_id)
            raise NoRoute(f"worker {worker} held the session but is gone")
        timeout = RouteTimeout(target.label, worker=worker, timeout=self.ack_timeout)
        self._pending.time_out(message_id, self.ack_timeout, timeout)
        return worker, owned_conversation or None

    async def _publish(self, batch: list[tuple[str, str, asyncio.Future[Any]]]) -> None:
        # Forwards made while the previous pipeline was out go together, in the order made:
        # one round trip for all, and Redis runs them in that order.
        calls = [(key, [message]) for key, message, _ in batch]
        withdraw = self._leases.scripts[1]
        try:
            results = await self._wire.route(self._route, withdraw, self._channel_prefix, calls)
        except Exception as exc:  # the outbox must outlive any failure: each send gets it
            results = [exc] * len(batch)
        for (_, _, routed), result in zip(batch, results, strict=True):
            if routed.done():
                continue
            if isinstance(result, BaseException):
                routed.set_exception(result)
            else:
                routed.set_result(result)

    # -- receiving (this worker holds sessions) --------------------------------------------
    async def _listen(self) -> None:
        while True:
            try:
                async for data in self._wire.messages(self._pubsub):
                    await self._handle(data)
                return  # unsubscribed: the router is closing
            except self._redis_error as exc:
                # redis-py reconnects and subscribes again on the next read; meanwhile senders
                # see this worker as gone and fall back, which is the truth.
                logger.warning("router lost its Redis subscription, retrying: %s", exc)
                await asyncio.sleep(0.5)

    def _listener_ended(self, task: asyncio.Task[None]) -> None:
        """The listener ended while the router runs: nobody delivers here any more, so withdraw
        every lease now (senders get `NotLive` and fall back) instead of renewing them."""
        if not self._leases.active or task.cancelled():
            return
        self._leases.active = False
        error = task.exception()
        logger.error(
            "router %s stopped listening (%s); withdrawing %d session(s)",
            self.worker_id,
            type(error).__name__ if error else "ended",
            len(self._leases.owned),
        )
        self._spawn(self._leases.withdraw(self._leases.take_all()), "callsid-router-withdraw")

    async def _handle(self, data: bytes | str) -> None:
        await self._delivery.handle(data)

    def _reply(self, worker: str, reply: Ack | RunAck) -> None:
        self._replies.put((self.keys.worker_channel(worker), reply.to_json()))

    async def _publish_replies(self, replies: list[tuple[str, str]]) -> None:
        # Everything acknowledged since the last flush goes in one pipeline: one round trip.
        try:
            await self._wire.publish(replies)
        except self._redis_error as exc:
            logger.warning("could not send %d acknowledgements: %s", len(replies), exc)

    def _spawn(self, coroutine: Any, name: str = "callsid-router") -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if name == "callsid-router-listen":
            task.add_done_callback(self._listener_ended)

    def _withdrawing(self) -> list[asyncio.Task[None]]:
        return [t for t in self._tasks if t.get_name() == "callsid-router-withdraw"]
