"""Mailboxes: data posted for a call SID, drained by the agent's own tool (the pull channel).

Every plan can do this (api-facts §11.3): a server or MCP tool whose parameter is filled from
`system__call_sid` calls `drain(call_sid)` and returns what was queued as its result. A mailbox is
bounded: a post to a full one raises `MailboxFull` rather than dropping anything; a call's items
expire `ttl` seconds after the last post, so calls that never drain leave nothing behind. Items
are JSON values, stored as JSON in both backends so they behave the same.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .._core._callsid import validate_call_sid
from ._errors import MailboxFull

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["Mailbox", "MemoryMailbox", "RedisMailbox"]

DEFAULT_MAX_ITEMS = 100
DEFAULT_TTL = 3600.0


@runtime_checkable
class Mailbox(Protocol):
    """Where a sender leaves data for a call and the call's tool picks it up."""

    async def post(self, call_sid: str, item: Any) -> int:
        """Queue `item` (a JSON value); the number now waiting. Raises `MailboxFull`."""
        ...

    async def drain(self, call_sid: str) -> list[Any]:
        """Every waiting item, oldest first, removed atomically (two drains never share one)."""
        ...

    async def size(self, call_sid: str) -> int: ...


def _check(max_items: int, ttl: float) -> None:
    if max_items < 1:
        raise ValueError("max_items must be at least 1")
    if ttl <= 0:
        raise ValueError("ttl must be positive")


class MemoryMailbox:
    """A mailbox in this process; safe across threads and event loops (no await under its lock).

    `clock` is injectable for TTL tests.
    """

    def __init__(
        self,
        *,
        max_items: int = DEFAULT_MAX_ITEMS,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check(max_items, ttl)
        self.max_items = max_items
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        # call SID -> (expiry, items); ordered by expiry, because a post moves its SID to the end.
        self._boxes: collections.OrderedDict[str, tuple[float, list[str]]] = (
            collections.OrderedDict()
        )

    def __repr__(self) -> str:
        return f"<MemoryMailbox calls={len(self._boxes)} max_items={self.max_items}>"

    async def post(self, call_sid: str, item: Any) -> int:
        sid = validate_call_sid(call_sid)
        encoded = json.dumps(item)  # fails now, for the sender, if the item is not JSON
        with self._lock:
            now = self._clock()
            self._expire(now)
            _, items = self._boxes.pop(sid, (0.0, []))
            if len(items) >= self.max_items:
                self._boxes[sid] = (now + self.ttl, items)
                raise MailboxFull(sid, self.max_items)
            items.append(encoded)
            self._boxes[sid] = (now + self.ttl, items)
            return len(items)

    async def drain(self, call_sid: str) -> list[Any]:
        sid = validate_call_sid(call_sid)
        with self._lock:
            self._expire(self._clock())
            _, items = self._boxes.pop(sid, (0.0, []))
        return [json.loads(raw) for raw in items]

    async def size(self, call_sid: str) -> int:
        sid = validate_call_sid(call_sid)
        with self._lock:
            self._expire(self._clock())
            return len(self._boxes.get(sid, (0.0, []))[1])

    def _expire(self, now: float) -> None:
        while self._boxes:
            sid, (expiry, _) = next(iter(self._boxes.items()))
            if expiry > now:
                return
            del self._boxes[sid]


# Bounded push in one step: a check-then-push from the client would let two posters overfill it.
_POST = """
local n = redis.call('LLEN', KEYS[1])
if n >= tonumber(ARGV[2]) then return -1 end
n = redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return n
"""


class RedisMailbox:
    """A mailbox shared by a fleet, on a `redis.asyncio.Redis` client you built.

    One list per call SID under `<key_prefix>:mailbox:<call_sid>`, its TTL renewed by each post;
    a drain reads and deletes in one MULTI/EXEC, so concurrent drains never both get an item.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        key_prefix: str = "callsid",
        max_items: int = DEFAULT_MAX_ITEMS,
        ttl: float = DEFAULT_TTL,
    ) -> None:
        _check(max_items, ttl)
        self.client = client
        self.key_prefix = key_prefix
        self.max_items = max_items
        self.ttl = ttl
        self._post = client.register_script(_POST)

    def __repr__(self) -> str:
        return f"<RedisMailbox key_prefix={self.key_prefix!r} max_items={self.max_items}>"

    def key(self, call_sid: str) -> str:
        return f"{self.key_prefix}:mailbox:{validate_call_sid(call_sid)}"

    async def post(self, call_sid: str, item: Any) -> int:
        key = self.key(call_sid)
        encoded = json.dumps(item)
        ttl_ms = max(int(self.ttl * 1000), 1)
        count = int(await self._post(keys=[key], args=[encoded, self.max_items, ttl_ms]))
        if count < 0:
            raise MailboxFull(call_sid, self.max_items)
        return count

    async def drain(self, call_sid: str) -> list[Any]:
        key = self.key(call_sid)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.lrange(key, 0, -1)
            pipe.delete(key)
            raw, _ = await pipe.execute()
        return [json.loads(item) for item in raw]

    async def size(self, call_sid: str) -> int:
        return int(await self.client.llen(self.key(call_sid)))
