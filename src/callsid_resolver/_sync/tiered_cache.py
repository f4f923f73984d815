# Generated from _async/tiered_cache.py by scripts/unasync.py: edit that file, not this.
"""`TieredCache`: a fast local cache in front of a shared one (docs/caching.md).

Reads hit `front` first and fill it from `back`; writes and deletes go to both. The front is
always a blocking in-process cache (a `MemoryCache`: no I/O, nothing to await); the back is the
shared one. The fleet lock is the back's: `_cache.flight_lock` (and its async twin) looks
through a tiered cache to its back, so this class has no `claim`/`release` of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# The protocols by their module: the generated twin names `ResolutionCache` for both tiers.
from .._core import _store
from .._core._store import CachedMapping, merge_tiers

__all__ = ["TieredCache"]


class TieredCache:
    """A blocking in-memory `front` (a `MemoryCache`) before a shared `ResolutionCache`
    `back` (such as `RedisCache`)."""

    def __init__(self, front: _store.ResolutionCache, back: _store.ResolutionCache) -> None:
        self.front = front
        self.back = back

    def __repr__(self) -> str:
        return f"<TieredCache front={self.front!r} back={self.back!r}>"

    def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
        """The cached mappings of `keys`, in order; None where a key has no live entry.

        The local front answers first; keys it misses are read from the back, and its hits are
        kept locally.
        """
        found = self.front.get_many(keys)
        missing = [key for key, value in zip(keys, found, strict=True) if value is None]
        if not missing:
            return found
        merged, keep = merge_tiers(keys, found, missing, self.back.get_many(missing))
        if keep:
            self.front.set_many(keep)
        return merged

    def set_many(
        self,
        items: Mapping[str, CachedMapping],
        ttl: float | None = None,
        *,
        only_if_absent: bool = False,
    ) -> None:
        """Store in the local front, then in the back; with `only_if_absent`, in the back only."""
        if only_if_absent:
            # Only the shared cache can tell whether a key is absent fleet-wide; the front, which
            # keeps no misses (see `merge_tiers`), is left alone.
            self.back.set_many(items, ttl, only_if_absent=True)
            return
        # Front first: with the shared cache down, this process still remembers.
        self.front.set_many(items, ttl)
        self.back.set_many(items, ttl)

    def delete(self, key: str) -> None:
        """Remove `key` from the local front, then from the back."""
        self.front.delete(key)
        self.back.delete(key)
