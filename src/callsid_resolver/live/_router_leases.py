"""A worker's ownership of its sessions' calls in Redis, for `RedisRouter`.

Each call this worker holds is announced under `Keys.route_sid` and `Keys.route_conversation`
(`<namespace>:route:sid|conv:{<id>}`, the braces a Redis Cluster hash tag), valued
`owner_record(worker id, conversation id)`, with a lease that `heartbeat()` renews every
`lease / 3`.
Calls are announced only while `active` (the worker's listener is delivering): a worker that
cannot deliver must not claim calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._core._keys import Keys, millis
from .._redis_support import DELETE_IF_HOLDER, redis_errors, redis_reason
from ._router_messages import RENEW, owner_record
from ._router_redis import eval_each

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["Leases"]

logger = logging.getLogger("callsid_resolver.live")


class Leases:
    """The calls this worker announced (`owned`: call SID -> conversation id) and their keys."""

    def __init__(
        self, client: redis.asyncio.Redis, *, keys: Keys, worker_id: str, lease: float
    ) -> None:

        self.client = client
        self.keys = keys
        self.worker_id = worker_id
        self.lease = lease
        self.owned: dict[str, str] = {}
        self.active = False
        self._redis_error = redis_errors()
        self._renew = client.register_script(RENEW)
        self._withdraw = client.register_script(DELETE_IF_HOLDER)
        self.scripts = (self._renew, self._withdraw)

    def _value(self, conversation_id: str) -> str:
        return owner_record(self.worker_id, conversation_id)

    def _keys(self, calls: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """(key, value) of the two ownership keys of each (call SID, conversation id)."""
        return [
            (key, self._value(conversation_id))
            for call_sid, conversation_id in calls
            for key in (
                self.keys.route_sid(call_sid),
                self.keys.route_conversation(conversation_id),
            )
        ]

    async def announce(self, call_sid: str, conversation_id: str) -> None:
        self.owned[call_sid] = conversation_id
        if not self.active:
            return  # announced when the router starts; or nobody would deliver: not at all
        value, lease_ms = self._value(conversation_id), millis(self.lease)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(self.keys.route_sid(call_sid), value, px=lease_ms)
                pipe.set(self.keys.route_conversation(conversation_id), value, px=lease_ms)
                await pipe.execute()
        except self._redis_error as exc:
            # The session itself is fine; the next heartbeat announces it (RENEW sets a
            # missing key), and until then senders elsewhere fall back.
            logger.warning("could not announce call %s yet: %s", call_sid, redis_reason(exc))

    def forget(self, call_sid: str, conversation_id: str) -> None:
        if self.owned.get(call_sid) == conversation_id:
            del self.owned[call_sid]

    def take_all(self) -> dict[str, str]:
        owned, self.owned = self.owned, {}
        return owned

    async def withdraw(self, calls: dict[str, str]) -> None:
        """Delete these calls' ownership keys where they still name us, in one round trip."""
        if not calls:
            return
        owned = self._keys(calls.items())
        try:
            results = await eval_each(self.client, self._withdraw, [(k, [v]) for k, v in owned])
        except self._redis_error as exc:
            results = [exc]
        error = next((r for r in results if isinstance(r, Exception)), None)
        if error is not None:
            logger.warning(
                "could not withdraw %d session(s) (their leases expire): %s", len(calls), error
            )

    async def heartbeat(self) -> None:
        """Renew every `lease / 3` while active; Redis errors are logged (leases may lapse)."""
        while True:
            await asyncio.sleep(self.lease / 3)
            if not self.active:
                return
            try:
                await self.renew()
            except self._redis_error as exc:
                logger.warning("could not renew session leases: %s", exc)

    async def renew(self) -> None:
        owned = list(self.owned.items())
        if not owned:
            return
        lease_ms = millis(self.lease)
        calls: list[tuple[str, list[Any]]] = [(k, [v, lease_ms]) for k, v in self._keys(owned)]
        renewed = await eval_each(self.client, self._renew, calls)
        error = next((r for r in renewed if isinstance(r, Exception)), None)
        if error is not None:
            raise error
        for (call_sid, conversation_id), sid_renewed in zip(owned, renewed[::2], strict=True):
            if not sid_renewed and self.owned.get(call_sid) == conversation_id:
                del self.owned[call_sid]  # another worker registered the call since
