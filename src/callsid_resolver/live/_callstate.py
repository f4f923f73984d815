"""What a `Sender` knows of a call: its conversation id, and whether that conversation is over.

The sender must not call a message "delivered" to a mailbox nobody will read (the call ended), and
must not send to one call what was meant for another (a call SID and a conversation id that
disagree). Both answers come from an open session (certain) or the resolver (a cached resolution,
and a GET of the conversation to check a status the cache reports live: docs/protocol.md §3).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._exceptions import CallSidResolverError
from ._errors import CallMismatch, ConversationOver

if TYPE_CHECKING:
    from .._async.resolver import AsyncCallSidResolver
    from ._monitor import MonitorChannel
    from ._registry import SessionRegistry
    from ._target import Target

__all__ = ["OVER_STATUSES", "CallFacts", "describe"]

OVER_STATUSES = frozenset({"done", "failed", "processing"})  # docs/protocol.md §3
logger = logging.getLogger("callsid_resolver.live")


class CallFacts:
    """Looks up, and briefly remembers, what the sender needs to know about a call.

    `status_ttl` bounds how long a status fetched with a GET is trusted (per conversation);
    at most `max_entries` are kept.
    """

    def __init__(
        self,
        resolver: AsyncCallSidResolver | None,
        registry: SessionRegistry | None,
        *,
        status_ttl: float = 2.0,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resolver = resolver
        self.registry = registry
        self.status_ttl = status_ttl
        self._max_entries = max_entries
        self._clock = clock
        self._statuses: dict[str, tuple[str, float]] = {}  # conversation id: (status, until)

    @classmethod
    def of(
        cls,
        resolver: AsyncCallSidResolver | None,
        monitor: MonitorChannel | None,
        registry: SessionRegistry | None,
        *,
        status_ttl: float,
        max_entries: int,
    ) -> CallFacts:
        """With `resolver`, else the monitor's or the registry's."""
        for owner in (monitor, registry):
            if resolver is None and owner is not None:
                resolver = owner.resolver
        return cls(resolver, registry, status_ttl=status_ttl, max_entries=max_entries)

    async def check(self, target: Target) -> None:
        """Refuse a call SID and a conversation id that name different calls.

        Only a session we hold or the resolver's answer can contradict; a call the resolver
        cannot find (a live call may be invisible to REST) is given the benefit of the doubt.
        """
        call_sid, conversation_id = target.call_sid, target.conversation_id
        if call_sid is None or conversation_id is None:
            return
        actual, _ = await self.conversation_of(call_sid)
        if actual is not None and actual != conversation_id:
            raise CallMismatch(call_sid, conversation_id, actual)

    async def conversation_of(self, call_sid: str | None) -> tuple[str | None, str | None]:
        """(conversation id, status as resolved) of a call; Nones where unknown."""
        if call_sid is None:
            return None, None
        if self.registry is not None:
            session = self.registry.get(call_sid=call_sid)
            if session is not None and session.conversation_id is not None:
                return session.conversation_id, "in-progress"
        if self.resolver is None:
            return None, None
        try:
            resolution = await self.resolver.resolve(call_sid)
        except Exception as exc:  # unknown is an answer here: the sends go on without it
            logger.debug("could not resolve %s for the sender: %s", call_sid, describe(exc))
            return None, None
        if resolution.requests and resolution.status is not None:
            self._remember(resolution.conversation_id, resolution.status)  # fetched just now
        return resolution.conversation_id, resolution.status

    async def over(self, target: Target) -> ConversationOver | None:
        """`ConversationOver` when the conversation is known to be over, else None.

        A cached resolution may be stale, so a status it reports live is checked with a GET (at
        most once per `status_ttl` per conversation); a failed check means "unknown", not "over".
        """
        cid, status = await self.conversation_of(target.call_sid)
        cid = target.conversation_id or cid
        if cid is None or self.resolver is None:
            return None
        if status not in OVER_STATUSES:
            status = await self._fresh_status(cid)
        if status not in OVER_STATUSES:
            return None
        return ConversationOver(
            cid, detail=f"the conversation is {status}; nothing was sent", status=status
        )

    async def _fresh_status(self, conversation_id: str) -> str | None:
        assert self.resolver is not None
        now = self._clock()
        cached = self._statuses.get(conversation_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            status = (await self.resolver.client.get_conversation(conversation_id)).status
        except Exception as exc:
            logger.debug("could not check the status of %s: %s", conversation_id, describe(exc))
            return None
        self._remember(conversation_id, status)
        return status

    def _remember(self, conversation_id: str, status: str) -> None:
        if len(self._statuses) >= self._max_entries:  # forget the oldest half
            for key in list(self._statuses)[: self._max_entries // 2]:
                del self._statuses[key]
        self._statuses[conversation_id] = (status, self._clock() + self.status_ttl)


def describe(exc: BaseException) -> str:
    """A failure as `NotLive` and the log show it: our errors in full (they hold no secret); a
    foreign one by type only, since its text may quote a credential."""
    if isinstance(exc, (CallSidResolverError, ValueError)):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__module__}.{type(exc).__name__} (details logged at DEBUG)"
