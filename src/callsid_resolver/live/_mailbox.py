"""Mailboxes: data posted for a call SID, drained by the agent's own tool (the pull channel).

Every plan can do this (docs/protocol.md §11.3): a server or MCP tool whose parameter is filled from
`system__call_sid` calls `drain(call_sid)` and returns what was queued as its result. A mailbox is
bounded: a post to a full one raises `MailboxFull` rather than dropping anything; a call's items
expire `ttl` seconds after the last post, so calls that never drain leave nothing behind. Items
are JSON values, stored as JSON in both backends so they behave the same.

A drain removes only what it returns: an item that cannot be decoded (something else wrote to
the list) is never returned and never costs the items beside it; `RedisMailbox` moves it aside,
under `<key>:corrupt`, and logs it. A store that fails raises `MailboxUnavailable`, never the
store's own error.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from .._core._callsid import validate_call_sid
from .._core._keys import DEFAULT_NAMESPACE, Keys, millis
from .._json import loads_bounded
from .._redis_support import redis_errors
from ._errors import MailboxFull, MailboxUnavailable

if TYPE_CHECKING:
    import redis.asyncio
    import redis.asyncio.cluster

__all__ = ["Mailbox", "MemoryMailbox", "RedisMailbox", "RunMailbox"]

logger = logging.getLogger("callsid_resolver.live")
T = TypeVar("T")
DEFAULT_MAX_ITEMS = 100
DEFAULT_TTL = 3600.0
MAX_ITEM = 16 * 2**20  # bytes of one stored item that a drain decodes


@runtime_checkable
class Mailbox(Protocol):
    """Where a sender leaves data for a call and the call's tool picks it up."""

    async def post(self, call_sid: str, item: Any) -> int:
        """Queue `item` (a JSON value); the number now waiting. Raises `MailboxFull`."""
        ...

    async def drain(self, call_sid: str) -> list[Any]:
        """Every waiting item, oldest first, removed atomically (two drains never share one).

        A drain removes only what it returns (an undecodable item is set aside, not lost).
        """
        ...

    async def size(self, call_sid: str) -> int:
        """How many items wait for `call_sid`."""
        ...


@runtime_checkable
class RunMailbox(Mailbox, Protocol):
    """A `Mailbox` that queues a run of items in one step (`Sender` uses it for a lane's run)."""

    async def post_many(self, call_sid: str, items: Sequence[Any]) -> int:
        """Queue `items` in order, as `post` would one by one; how many were queued (a prefix:
        the rest found the mailbox full). Raises `MailboxUnavailable`, never `MailboxFull`."""
        ...


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
        """Queue `item` (any JSON value) for `call_sid`; the number now waiting.

        Raises:
            MailboxFull: the box already holds `max_items`.
            TypeError: `item` is not JSON-serialisable.
        """
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

    async def post_many(self, call_sid: str, items: Sequence[Any]) -> int:
        """Queue `items` in order under one lock; how many fitted. See `RunMailbox`."""
        sid = validate_call_sid(call_sid)
        encoded = [json.dumps(item) for item in items]
        with self._lock:
            now = self._clock()
            self._expire(now)
            expiry, queued = self._boxes.pop(sid, (0.0, []))
            taken = encoded[: max(self.max_items - len(queued), 0)]
            queued.extend(taken)
            self._boxes[sid] = (now + self.ttl if taken else expiry, queued)
            return len(taken)

    async def drain(self, call_sid: str) -> list[Any]:
        """Take every item waiting for `call_sid`, oldest first, and empty its box."""
        sid = validate_call_sid(call_sid)
        with self._lock:
            self._expire(self._clock())
            _, items = self._boxes.pop(sid, (0.0, []))
        return [json.loads(raw) for raw in items]

    async def size(self, call_sid: str) -> int:
        """How many items wait for `call_sid`."""
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
# A run of posts in one step, as the posts would be one by one: as many as there is room for.
# ARGV: max items, TTL (ms), then the items. RPUSH in slices: Lua's unpack() has a stack limit.
_POST_MANY = """
local n = redis.call('LLEN', KEYS[1])
local count = math.max(math.min(tonumber(ARGV[1]) - n, #ARGV - 2), 0)
for first = 3, 2 + count, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, first, math.min(first + 999, 2 + count)))
end
if count > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return count
"""
# The second half of a drain. ARGV: TTL (ms), c, c 1-based positions of items the client could
# not decode, then the SHA-1 of each of the n items it read. Posts only append and drains only
# take from the front, so the list now starts with what the client read minus the `gone` first
# ones a concurrent drain took (and returned) meanwhile. Find `gone`, take the rest, set the
# undecodable ones aside in KEYS[2], and return `gone`: the client returns its items after it.
_TAKE = """
local c = tonumber(ARGV[2])
local n = #ARGV - 2 - c
local front = redis.call('LRANGE', KEYS[1], 0, n - 1)
local seen = {}
for i, item in ipairs(front) do seen[i] = redis.sha1hex(item) end
local function fits(j)
  for i = 1, n - j do
    if seen[i] ~= ARGV[2 + c + j + i] then return false end
  end
  return true
end
local gone = n
for j = 0, n - 1 do
  if seen[1] == ARGV[2 + c + j + 1] and fits(j) then gone = j break end
end
local aside = 0
for k = 3, 2 + c do
  local p = tonumber(ARGV[k])
  if p > gone then
    redis.call('RPUSH', KEYS[2], front[p - gone])
    aside = aside + 1
  end
end
if aside > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
redis.call('LTRIM', KEYS[1], n - gone, -1)
return gone
"""


class RedisMailbox:
    """A mailbox shared by a fleet, on a `redis.asyncio.Redis` client you built.

    One list per call SID under `Keys(namespace).mailbox(call_sid)`, i.e.
    `<namespace>:mailbox:{<call_sid>}` (a Redis Cluster hash tag: the list and its `:corrupt`
    sibling share a slot), its TTL renewed by each post.
    A drain reads the list, decodes it, then takes what it read in one script, less what a
    concurrent drain took meanwhile: two drains never both get an item, and an item is removed
    only once it has been decoded and is returned. Undecodable items go to `<key>:corrupt`
    (same TTL) for inspection. Redis errors (connection, timeout, out of memory) raise
    `MailboxUnavailable`; a drain whose reply is lost after the take (the connection dropped in
    that instant) loses what it took, as any at-most-once read does.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        max_items: int = DEFAULT_MAX_ITEMS,
        ttl: float = DEFAULT_TTL,
    ) -> None:
        _check(max_items, ttl)

        self.client = client
        self.namespace = namespace
        self.keys = Keys(namespace)
        self.max_items = max_items
        self.ttl = ttl
        self._redis_error = redis_errors()
        self._post = client.register_script(_POST)
        self._post_many = client.register_script(_POST_MANY)
        self._take = client.register_script(_TAKE)

    def __repr__(self) -> str:
        return f"<RedisMailbox namespace={self.namespace!r} max_items={self.max_items}>"

    def key(self, call_sid: str) -> str:
        """The Redis list that holds `call_sid`'s items (hash-tagged by call SID)."""
        return self.keys.mailbox(validate_call_sid(call_sid))

    async def post(self, call_sid: str, item: Any) -> int:
        """Queue `item` (any JSON value) for `call_sid`, atomically; the number now waiting.

        Raises:
            MailboxFull: the box already holds `max_items`.
            TypeError: `item` is not JSON-serialisable.
        """
        key = self.key(call_sid)
        args: list[str | int] = [json.dumps(item), self.max_items, millis(self.ttl)]
        count = int(await self._redis(call_sid, "post", self._post(keys=[key], args=args)))
        if count < 0:
            raise MailboxFull(call_sid, self.max_items)
        return count

    async def post_many(self, call_sid: str, items: Sequence[Any]) -> int:
        """Queue `items` in one script (one round trip); how many fitted. See `RunMailbox`."""
        key = self.key(call_sid)
        if not items:
            return 0
        args: list[str | int] = [self.max_items, millis(self.ttl)]
        args.extend(json.dumps(item) for item in items)
        return int(await self._redis(call_sid, "post", self._post_many(keys=[key], args=args)))

    async def drain(self, call_sid: str) -> list[Any]:
        """Take every item waiting for `call_sid`, oldest first, in one transaction."""
        key = self.key(call_sid)
        raw = await self._redis(call_sid, "drain", self.client.lrange(key, 0, -1))
        if not raw:
            return []
        decoded = [_decode(item) for item in raw]
        corrupt = [i for i, (ok, _) in enumerate(decoded, 1) if not ok]
        digests = [_sha1(item.encode() if isinstance(item, str) else item) for item in raw]
        args: list[str | int] = [millis(self.ttl), len(corrupt), *corrupt, *digests]
        taken = self._take(keys=[key, f"{key}:corrupt"], args=args)
        gone = int(await self._redis(call_sid, "drain", taken))
        aside = sum(1 for position in corrupt if position > gone)
        if aside:
            logger.warning(
                "mailbox of call %s: set %d undecodable item(s) aside under %s:corrupt",
                call_sid,
                aside,
                key,
            )
        return [value for ok, value in decoded[gone:] if ok]

    async def size(self, call_sid: str) -> int:
        """How many items wait for `call_sid`."""
        key = self.key(call_sid)
        return int(await self._redis(call_sid, "size", self.client.llen(key)))

    async def _redis(self, call_sid: str, operation: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except self._redis_error as exc:
            # The class name only: a Redis error's text can hold the server's address.
            raise MailboxUnavailable(call_sid, operation, type(exc).__name__) from None
        except UnicodeDecodeError:  # a client with decode_responses=True read a corrupt item
            why = "an item is not UTF-8; use a client with decode_responses=False"
            raise MailboxUnavailable(call_sid, operation, why) from None


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def _decode(data: bytes | str) -> tuple[bool, Any]:
    """(True, the item), or (False, None) for bytes that are not UTF-8 JSON within bounds."""
    try:
        return True, loads_bounded(data, max_size=MAX_ITEM)
    except ValueError:
        return False, None
