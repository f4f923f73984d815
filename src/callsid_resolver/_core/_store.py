"""What the resolver stores and the seams a cache backend implements.

`CachedMapping` is a call SID ↔ conversation mapping as a cache holds it; `ResolutionCache` and
`AsyncResolutionCache` are the backends' protocols, `FlightLock` and `AsyncFlightLock` the
cross-process lock that a shared backend (Redis) adds so that one process of a fleet looks a SID
up while the others wait for its answer. No I/O here: the backends live above `_core`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from .._models import TERMINAL_STATUSES, Conversation, Resolution
from ._keys import Keys

__all__ = [
    "AsyncFlightLock",
    "AsyncResolutionCache",
    "CachedMapping",
    "FlightLock",
    "ResolutionCache",
    "entries_for",
    "merge_tiers",
]


class CachedMapping(BaseModel):
    """A call SID ↔ conversation mapping as stored; either side may be None (a known absence)."""

    model_config = ConfigDict(frozen=True)

    call_sid: str | None
    conversation_id: str | None
    agent_id: str | None = None
    status: str | None = None
    start_time_unix_secs: int | None = None
    primed: bool = False  # learned for free (webhook, outbound call, own session), not looked up
    call_ids: tuple[str, ...] = ()  # every id the conversation shows (SIP: UUID and Call-ID)

    def to_resolution(self, requests: int = 0) -> Resolution:
        """This entry as a `Resolution` answered from the cache (`source` "cache" or "primed")."""
        assert self.call_sid is not None
        assert self.conversation_id is not None
        return Resolution(
            call_sid=self.call_sid,
            conversation_id=self.conversation_id,
            agent_id=self.agent_id,
            status=self.status,
            start_time_unix_secs=self.start_time_unix_secs,
            source="primed" if self.primed else "cache",
            requests=requests,
        )


@runtime_checkable
class ResolutionCache(Protocol):
    """A blocking cache backend. `ttl=None` means the backend's default TTL."""

    def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
        """The cached mappings of `keys`, in order; None where a key has no live entry."""
        ...

    def set_many(
        self,
        items: Mapping[str, CachedMapping],
        ttl: float | None = None,
        *,
        only_if_absent: bool = False,
    ) -> None:
        """Store `items` for `ttl` seconds; with `only_if_absent`, skip each key that holds a
        live entry (the resolver writes its misses so, never over a mapping written meanwhile)."""

    def delete(self, key: str) -> None:
        """Remove `key` (no error when it is absent)."""
        ...


@runtime_checkable
class AsyncResolutionCache(Protocol):
    """The asyncio twin of `ResolutionCache`, for backends that do I/O (Redis)."""

    async def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
        """The cached mappings of `keys`, in order; None where a key has no live entry."""
        ...

    async def set_many(
        self,
        items: Mapping[str, CachedMapping],
        ttl: float | None = None,
        *,
        only_if_absent: bool = False,
    ) -> None:
        """Store each mapping of `items` under its key for `ttl` seconds (None: the cache's
        default TTL).
        """
        ...

    async def delete(self, key: str) -> None:
        """Remove `key` (no error when it is absent)."""
        ...


@runtime_checkable
class FlightLock(Protocol):
    """A blocking cache that can also lock a key across processes."""

    def claim(self, key: str, ttl: float) -> str | None:
        """Claim `key` for `ttl` seconds: a token, or None if another caller holds it."""
        ...

    def release(self, key: str, token: str) -> None:
        """Release `key` if `token` still holds it (a claim that expired is left alone)."""
        ...


@runtime_checkable
class AsyncFlightLock(Protocol):
    """The asyncio twin of `FlightLock`."""

    async def claim(self, key: str, ttl: float) -> str | None:
        """Claim `key` for `ttl` seconds: a token, or None if another caller holds it."""
        ...

    async def release(self, key: str, token: str) -> None:
        """Release `key` if `token` still holds it (a claim that expired is left alone)."""
        ...


def entries_for(keys: Keys, conversations: Sequence[Conversation]) -> dict[str, CachedMapping]:
    """The entries that fetched conversations teach us, keyed for `set_many`."""
    out: dict[str, CachedMapping] = {}
    for conv in conversations:
        sid = conv.call_sid
        mapping = CachedMapping(
            call_sid=sid,
            conversation_id=conv.conversation_id,
            agent_id=conv.agent_id,
            status=conv.status,
            start_time_unix_secs=conv.metadata.start_time_unix_secs,
        )
        if sid is not None:
            out[keys.sid(sid)] = mapping
            out[keys.conversation(conv.conversation_id)] = mapping
        elif conv.status in TERMINAL_STATUSES:
            # A live call may not show its phone record yet; only a finished conversation's
            # lack of a call SID is final.
            out[keys.conversation(conv.conversation_id)] = mapping
    return out


def merge_tiers(
    keys: Sequence[str],
    found: list[CachedMapping | None],
    missing: list[str],
    fetched: list[CachedMapping | None],
) -> tuple[list[CachedMapping | None], dict[str, CachedMapping]]:
    """A tiered cache's read: the front's answers (`found`, for `keys`) completed by the back's
    (`fetched`, for `missing`), and the back's hits worth copying to the front. Misses are not
    copied: the front would keep them for its own, longer, default TTL, while a negative entry
    must expire on time everywhere."""
    by_key = dict(zip(missing, fetched, strict=True))
    merged = [v if v is not None else by_key[k] for k, v in zip(keys, found, strict=True)]
    keep = {k: v for k, v in by_key.items() if v is not None and v.conversation_id is not None}
    return merged, keep
