"""What the resolver drivers do about the cache beside the plan: degrade on a fault, and keep a
lookup from writing back a SID that `forget()` dropped while it ran."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ._core._keys import Keys
from ._core._ops import ClaimFlight, ReadCache, WriteCache
from ._core._store import CachedMapping
from ._exceptions import CacheUnavailable

__all__ = ["Lookups", "caller_cache_fault", "log_cache_fault", "without_cache"]

logger = logging.getLogger("callsid_resolver")


class Lookups:
    """The call SIDs being looked up (with how many lookups each), and those of them forgotten
    meanwhile. Only SIDs in flight are kept, so it stays as small as the lookups running."""

    def __init__(self, keys: Keys) -> None:
        self._keys = keys
        self._lock = threading.Lock()
        self._flying: dict[str, int] = {}
        self._forgotten: set[str] = set()

    def started(self, sid: str) -> None:
        with self._lock:
            self._flying[sid] = self._flying.get(sid, 0) + 1

    def ended(self, sid: str) -> None:
        with self._lock:
            self._flying[sid] -= 1
            if not self._flying[sid]:
                del self._flying[sid]
                self._forgotten.discard(sid)

    def forgetting(self, sid: str) -> None:
        """`forget(sid)` is running: a lookup of it in flight must not write it back."""
        with self._lock:
            if sid in self._flying:
                self._forgotten.add(sid)

    def to_write(self, entries: Mapping[str, CachedMapping]) -> dict[str, CachedMapping]:
        """`entries` minus those of SIDs forgotten during their lookup."""
        with self._lock:
            gone = {self._keys.sid(sid) for sid in self._forgotten}
        return {k: v for k, v in entries.items() if k not in gone}


def log_cache_fault(operation: str, exc: Exception) -> None:
    """A cache fault is not the caller's problem during a lookup: log it (the type only: a
    backend's message may name hosts) and go on as if there were no cache."""
    logger.warning(
        "cache %s failed (%s); resolving without the cache", operation, type(exc).__name__
    )


def without_cache(op: ClaimFlight | ReadCache | WriteCache) -> Any:
    """The outcome of a cache operation whose backend failed: a read misses, a write is dropped,
    and a claim is granted, so that with Redis down every waiter looks the SID up itself."""
    if isinstance(op, ReadCache):
        return [None] * len(op.keys)
    return True if isinstance(op, ClaimFlight) else None


@contextmanager
def caller_cache_fault(operation: str) -> Iterator[None]:
    """A cache fault in an operation the caller asked for (`remember`, `forget`, ...) becomes
    `CacheUnavailable`: unlike a lookup, it has no answer to fall back on. Serves both twins
    (the `with` may hold an `await`)."""
    try:
        yield
    except Exception as exc:
        raise CacheUnavailable(operation, exc) from exc
