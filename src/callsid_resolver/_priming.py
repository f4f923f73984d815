"""Priming from a tool call: the one moment the platform hands a call's two ids together.

A tool whose parameters are filled from `system__call_sid` (or `system__call_id` on SIP trunks)
and `system__conversation_id` (docs/protocol.md §7; both are resolved when the tool runs) knows
the mapping the resolver would otherwise look up, at a time when REST may not show a live call's
SID at all (docs/protocol.md §12). The resolvers' `remember_tool_call` turns that moment into a
cache entry for the whole fleet; this module is the part both twins share: validation, the typed
reference, and the memo that makes the tenth tool call of a call cost no cache write.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

import cachetools
from pydantic import BaseModel, ConfigDict

from ._core._api import validate_conversation_id
from ._core._callsid import is_twilio_call_sid, validate_call_sid
from ._core._keys import Keys
from ._core._store import CachedMapping
from ._exceptions import InvalidConversationId

__all__ = ["CallRef", "InvalidConversationId"]

# A conversation id becomes a path segment and a cache key; no platform id comes near this.
MAX_CONVERSATION_ID = 256
MEMO_SIZE = 4096
# Shorter than any sane cache TTL, so an entry evicted or forgotten meanwhile is written again
# within this many seconds of the next tool call.
MEMO_TTL = 300.0


class CallRef(BaseModel):
    """A live call as a tool saw it: both ids, checked, and whether this call wrote the cache.

    `written` is False when the same pair was already written by this resolver within the last
    few minutes (the memo), so repeated tool calls of one phone call cost one cache write.
    """

    model_config = ConfigDict(frozen=True)

    call_sid: str
    conversation_id: str
    agent_id: str | None = None
    written: bool = False

    @property
    def carrier(self) -> Literal["twilio", "sip"]:
        """`twilio` for a `CA…` call SID, `sip` for any other call id (a SIP trunk's)."""
        return "twilio" if is_twilio_call_sid(self.call_sid) else "sip"


def check_conversation_id(value: object) -> str:
    """The id unchanged, or `InvalidConversationId` saying what is wrong with it."""
    if not isinstance(value, str):
        raise InvalidConversationId(f"expected a string, got {type(value).__name__}")
    if len(value) > MAX_CONVERSATION_ID:
        raise InvalidConversationId(f"{len(value)} characters, more than {MAX_CONVERSATION_ID}")
    if not value.isprintable():
        raise InvalidConversationId("contains a control character")
    return validate_conversation_id(value)  # InvalidConversationId saying what is wrong


class ToolCallMemo:
    """The pairs this resolver wrote lately: bounded (LRU) and short-lived (TTL), thread-safe.

    `clock` (seconds, monotonic) is injectable for tests.
    """

    def __init__(
        self,
        maxsize: int = MEMO_SIZE,
        ttl: float = MEMO_TTL,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._pairs: cachetools.TTLCache[tuple[str, str, str | None], bool] = cachetools.TTLCache(
            maxsize=maxsize, ttl=ttl, timer=clock
        )

    def __len__(self) -> int:
        with self._lock:
            return len(self._pairs)

    def prepare(
        self, keys: Keys, call_sid: str, conversation_id: str, agent_id: str | None
    ) -> tuple[CallRef, dict[str, CachedMapping]]:
        """Validate the ids; the reference and the entries still to write (none if memoised).

        Raises `InvalidCallSid` or `InvalidConversationId` before any I/O.
        """
        sid = validate_call_sid(call_sid)
        conversation = check_conversation_id(conversation_id)
        with self._lock:
            known = (sid, conversation, agent_id) in self._pairs
        ref = CallRef(
            call_sid=sid, conversation_id=conversation, agent_id=agent_id, written=not known
        )
        if known:
            return ref, {}
        mapping = CachedMapping(
            call_sid=sid, conversation_id=conversation, agent_id=agent_id, primed=True
        )
        return ref, {keys.sid(sid): mapping, keys.conversation(conversation): mapping}

    def written(self, ref: CallRef) -> None:
        """Record a pair once its entries are in the cache (a failed write is retried next time)."""
        with self._lock:
            self._pairs[(ref.call_sid, ref.conversation_id, ref.agent_id)] = True
