"""The mailbox tool's logic, free of the MCP SDK: prime the call's mapping from the ids the
platform filled in, drain what backends queued, and say when Redis lost data (docs/mcp.md).
`callsid_resolver.mcp_server` serves it."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cachetools

from ._core._callsid import validate_call_sid
from ._core._keys import millis
from ._exceptions import InvalidCallSid
from ._priming import InvalidConversationId
from .live import Mailbox, RedisMailbox

if TYPE_CHECKING:
    from ._async.resolver import AsyncCallSidResolver

__all__ = ["ARGUMENTS", "MailboxTool"]

# Tool argument -> the system dynamic variable that must fill it (docs/protocol.md §7). On SIP
# trunk calls `call_sid` may be mapped to `system__call_id` instead: use the id your backend posts
# under.
ARGUMENTS = {"call_sid": "system__call_sid", "conversation_id": "system__conversation_id"}

# Values a platform leaves in a parameter whose variable is unset (a web call has no call SID).
_UNSET = frozenset({"", "null", "none", "undefined"})


def _unset(value: str | None) -> bool:
    return value is None or value.strip().lower() in _UNSET or value.startswith("{{")


class MailboxTool:
    """The tool's logic, free of the MCP SDK: prime the mapping, drain the mailbox, report losses.

    `resolver` may be None (no priming). `clock` is injectable for tests.
    """

    def __init__(
        self,
        mailbox: Mailbox,
        resolver: AsyncCallSidResolver | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.mailbox = mailbox
        self.resolver = resolver
        self._epoch = _RedisEpoch(mailbox, clock) if isinstance(mailbox, RedisMailbox) else None

    async def start(self) -> None:
        """Note the Redis data set's epoch now, so a loss before the first tool call is seen too."""
        if self._epoch is not None:
            await self._epoch.check(None)

    async def __call__(self, call_sid: str | None, conversation_id: str | None) -> dict[str, Any]:
        """The tool result: `{call_sid, conversation_id, count, items, warnings}`.

        Raises `InvalidCallSid` for a missing or malformed call SID (nothing drained).
        """
        if _unset(call_sid):
            raise InvalidCallSid(
                "no call SID: not a phone call, or the tool's call_sid argument is not filled "
                f"from {ARGUMENTS['call_sid']}"
            )
        sid = validate_call_sid(call_sid)
        if _unset(conversation_id):
            conversation_id = None  # an unfilled placeholder must never become a mapping
        warnings = await self._prime(sid, conversation_id)
        if self._epoch is not None:
            try:
                warnings += await self._epoch.check(sid)
            except Exception as exc:  # the drain below meets the same fault and reports it
                logging.getLogger(__name__).warning("loss check for %s failed: %r", sid, exc)
                warnings.append("could not check whether the mailbox's Redis lost data")
        # The drain is the tool's last await: nothing of ours runs between taking the items and
        # returning them, so no error or cancellation here can strand them (a drain removes only
        # what it returns).
        items = await self.mailbox.drain(sid)
        return {
            "call_sid": sid,
            "conversation_id": conversation_id,
            "count": len(items),
            "items": items,
            "warnings": warnings,
        }

    async def requeue(self, call_sid: str, items: list[Any]) -> None:
        """Put items a client never received back at the head of the call's mailbox, in order.

        On Redis they go back ahead of anything posted meanwhile (and the mailbox's TTL is
        renewed); another mailbox takes them as new posts, behind such items.
        """
        if not items:
            return
        if isinstance(self.mailbox, RedisMailbox):
            key = self.mailbox.key(call_sid)
            async with self.mailbox.client.pipeline(transaction=True) as pipe:
                pipe.lpush(key, *[json.dumps(item) for item in reversed(items)])
                pipe.pexpire(key, millis(self.mailbox.ttl))
                await pipe.execute()
            return
        for item in items:
            await self.mailbox.post(call_sid, item)

    async def _prime(self, sid: str, conversation_id: str | None) -> list[str]:
        if self.resolver is None or conversation_id is None:
            return []
        try:
            await self.resolver.remember_tool_call(sid, conversation_id)
        except InvalidConversationId as exc:
            return [f"mapping not learned: {exc}"]
        except Exception as exc:  # a cache fault must not keep the call from its updates
            logging.getLogger(__name__).warning("priming %s failed: %r", sid, exc)
            return ["mapping not learned: the resolver's cache is unavailable"]
        return []


class _RedisEpoch:
    """Tells a drain whether the mailbox's Redis lost its data since this server first saw it.

    A marker key without TTL holds an epoch. Missing or changed, it means the data set was lost
    (a restart without AOF/RDB, a flush, eviction), so items posted before may be gone: the
    drains of the next `ttl` seconds say so, once per call. A Redis restarted with persistence
    keeps the marker and the items alike, and nothing is reported.
    """

    def __init__(self, mailbox: RedisMailbox, clock: Callable[[], float]) -> None:
        self.client = mailbox.client
        self.key = f"{mailbox.namespace}:mailbox-epoch"  # ':' never occurs in a call SID
        self.window = mailbox.ttl
        self._clock = clock
        self._seen: bytes | str | None = None
        self._lost_at: float | None = None
        self._warned: cachetools.LRUCache[str, bool] = cachetools.LRUCache(maxsize=100_000)

    async def check(self, call_sid: str | None) -> list[str]:
        value = await self.client.get(self.key)
        if value is None:
            fresh = f"{self._clock():.3f}-{uuid.uuid4().hex[:8]}"
            created = await self.client.set(self.key, fresh, nx=True)
            value = fresh.encode() if created else await self.client.get(self.key)
        if self._seen is not None and value != self._seen:
            self._lost_at = self._clock()
            self._warned.clear()
        self._seen = value
        if call_sid is None or self._lost_at is None or call_sid in self._warned:
            return []
        if self._clock() - self._lost_at > self.window:
            return []
        self._warned[call_sid] = True
        return [
            "the mailbox's Redis lost its data (restart without persistence, flush or eviction)"
            f" {self._clock() - self._lost_at:.0f} s ago: updates queued before then may be lost"
        ]
