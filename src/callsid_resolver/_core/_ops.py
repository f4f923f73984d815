"""The I/O operations the plan yields (`_plan`) and the drivers perform (`_resolver.py`).

Each is a plain record. The outcome sent back into the plan: a list of entries (None for a
miss) for `ReadCache`, None for `WriteCache` and `Pause`, `(page, requests)` for `ListPage`,
`(conversations, requests)` for `Fetch`, and True when the lock was taken for `ClaimFlight`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from .._cache import CachedMapping
from ._api import ListQuery

__all__ = ["ClaimFlight", "Fetch", "ListPage", "Operation", "Pause", "ReadCache", "WriteCache"]


@dataclass(frozen=True)
class ReadCache:
    keys: tuple[str, ...]


@dataclass(frozen=True)
class WriteCache:
    """Store `entries`; with `only_if_absent`, only where the key holds nothing (`SET NX`), so
    that a miss never replaces a mapping that `remember()` wrote during the lookup."""

    entries: dict[str, CachedMapping]
    ttl: float | None = None
    only_if_absent: bool = False


@dataclass(frozen=True)
class ListPage:
    query: ListQuery


@dataclass(frozen=True)
class ClaimFlight:
    """Take the cross-process lock of this lookup; the outcome is True when it was taken."""

    key: str
    ttl: float


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class Fetch:
    """GET these conversations, newest first, at most `concurrency` at a time; stop starting new
    ones once one carries `call_sid`. A conversation gone meanwhile (404) is left out."""

    conversation_ids: tuple[str, ...]
    call_sid: str
    concurrency: int = 8

    def room(self, completed: int, running: int) -> int:
        """How many more reads to start now. The window opens by one read per completed read
        (TCP's slow start), so a call near the top of the list, the common case, costs one or
        two reads instead of a full window, and a deep one still runs `concurrency` wide."""
        return max(min(self.concurrency, 1 + completed) - running, 0)


Operation = Union[ReadCache, WriteCache, ListPage, Fetch, ClaimFlight, Pause]  # noqa: UP007 (runtime alias on 3.10)
