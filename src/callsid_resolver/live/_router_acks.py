"""What a `RedisRouter` forward comes to: `Routed` (handed over; its `ack` settles later) or
`NoRoute`, and the acknowledgements the router waits for: one future per routed event, settled
by the owner's `Ack`/`RunAck`, by the router's `ack_timeout`, or when the router closes.

An outcome is set as the future's result (None: confirmed; else a callable building the error,
like `_transport.Batch`), never as its exception: a send abandoned by its caller leaves no
"exception was never retrieved" behind.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass

from ._errors import SenderError
from ._router_messages import Ack, RunAck
from ._transport import Batch

__all__ = ["NoRoute", "PendingAcks", "Routed"]


class NoRoute(SenderError):
    """No worker can take the message (or Redis cannot be asked); the `Sender` tries its next
    channel and puts the reason into `NotLive.reasons`."""


@dataclass(frozen=True)
class Routed:
    """A message handed to the owning worker; `ack` settles when it acknowledges (or not)."""

    worker: str
    conversation_id: str | None
    ack: Batch


class PendingAcks:
    """The routed messages not yet acknowledged, by message id."""

    def __init__(self) -> None:
        self._pending: dict[int, tuple[list[Batch], asyncio.TimerHandle | None]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def expect(self, message_id: int, events: int) -> list[Batch]:
        """Wait for message `message_id` (of `events` events): one future per event."""
        loop = asyncio.get_running_loop()
        acks: list[Batch] = [loop.create_future() for _ in range(events)]
        self._pending[message_id] = (acks, None)
        return acks

    def forget(self, message_id: int) -> None:
        """Stop waiting for `message_id` (it was never handed over); its futures stay unset."""
        self._pending.pop(message_id, None)

    def time_out(self, message_id: int, timeout: float, error: BaseException) -> None:
        """Settle `message_id` with `error` unless acknowledged within `timeout` seconds."""
        pending = self._pending.get(message_id)
        if pending is not None:
            timer = asyncio.get_running_loop().call_later(timeout, self.settle, message_id, error)
            self._pending[message_id] = (pending[0], timer)

    def settle(self, message_id: int, error: BaseException | None) -> None:
        """Every event of `message_id` confirmed (None) or failed with `error`."""
        acks, _ = self._pending.get(message_id, ((), None))
        self._settle_each(message_id, [error] * len(acks))

    def settle_all(self, error: BaseException) -> None:
        """Fail every message still waiting (the router is closing)."""
        for message_id in list(self._pending):
            self.settle(message_id, error)

    def acknowledged(self, reply: Ack | RunAck) -> None:
        """An owner's acknowledgement arrived."""
        if isinstance(reply, Ack):
            self.settle(reply.id, reply.failure())
            return
        acks, _ = self._pending.get(reply.id, ((), None))
        self._settle_each(reply.id, reply.failures(len(acks)))

    def _settle_each(self, message_id: int, errors: Sequence[BaseException | None]) -> None:
        acks, timer = self._pending.pop(message_id, ((), None))
        if timer is not None:
            timer.cancel()
        for ack, error in zip(acks, errors, strict=True):
            if not ack.done():
                ack.set_result(None if error is None else functools.partial(_same, error))


def _same(error: BaseException) -> BaseException:
    return error
