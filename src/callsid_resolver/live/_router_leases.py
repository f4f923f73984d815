"""A worker's ownership of its sessions' calls in Redis, for `RedisRouter`.

Each call this worker holds is announced under `<prefix>:route:sid:{<call_sid>}` and
`<prefix>:route:conv:{<conversation_id>}` (the braces: a Redis Cluster hash tag), valued
`"<worker id> <conversation id>"`, with a lease that `heartbeat()` renews every `lease / 3`.
Calls are announced only while `active` (the worker's listener is delivering): a worker that
cannot deliver must not claim calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._core._callsid import validate_call_sid
from .._redis import _millis
from ._router_redis import RENEW, WITHDRAW, eval_each, redis_reason

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["Leases"]

logger = logging.getLogger("callsid_resolver.live")


class Leases:
    """The calls this worker announced (`owned`: call SID -> conversation id) and their keys."""

    def __init__(
        self, client: redis.asyncio.Redis, *, key_prefix: str, worker_id: str, lease: float
    ) -> None:
        from redis.exceptions import RedisClusterException, RedisError

        self.client = client
        self.key_prefix = key_prefix
        self.worker_id = worker_id
        self.lease = lease
        self.owned: dict[str, str] = {}
        self.active = False
        self._redis_error = (RedisError, RedisClusterException)  # the latter: not a RedisError
        self._renew = client.register_script(RENEW)
        self._withdraw = client.register_script(WITHDRAW)
        self.scripts = (self._renew, self._withdraw)

    def sid_key(self, call_sid: str) -> str:
        return f"{self.key_prefix}:route:sid:{{{call_sid}}}"

    def conversation_key(self, conversation_id: str) -> str:
        return f"{self.key_prefix}:route:conv:{{{conversation_id}}}"

    def key(self, call_sid: str | None, conversation_id: str | None) -> str:
        """The ownership key a send looks up: by call SID, else by conversation id."""
        if call_sid is not None:
            return self.sid_key(validate_call_sid(call_sid))
        if conversation_id is None:
            raise ValueError("give call_sid or conversation_id")
        return self.conversation_key(conversation_id)

    def _value(self, conversation_id: str) -> str:
        return f"{self.worker_id} {conversation_id}"

    def _keys(self, calls: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """(key, value) of the two ownership keys of each (call SID, conversation id)."""
        return [
            (key, self._value(conversation_id))
            for call_sid, conversation_id in calls
            for key in (self.sid_key(call_sid), self.conversation_key(conversation_id))
        ]

    async def announce(self, call_sid: str, conversation_id: str) -> None:
        self.owned[call_sid] = conversation_id
        if not self.active:
            return  # announced when the router starts; or nobody would deliver: not at all
        value, lease_ms = self._value(conversation_id), _millis(self.lease)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(self.sid_key(call_sid), value, px=lease_ms)
                pipe.set(self.conversation_key(conversation_id), value, px=lease_ms)
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
        lease_ms = _millis(self.lease)
        calls: list[tuple[str, list[Any]]] = [(k, [v, lease_ms]) for k, v in self._keys(owned)]
        renewed = await eval_each(self.client, self._renew, calls)
        error = next((r for r in renewed if isinstance(r, Exception)), None)
        if error is not None:
            raise error
        for (call_sid, conversation_id), sid_renewed in zip(owned, renewed[::2], strict=True):
            if not sid_renewed and self.owned.get(call_sid) == conversation_id:
                del self.owned[call_sid]  # another worker registered the call since
