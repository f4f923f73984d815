"""`MemoryCache`: the in-process backend, built for the warm path (docs/caching.md).

A dict per key family (`Keys.sid` of a namespace, `Keys.conversation`, and a catch-all of whole
keys) maps a bare id to a slotted `MemoryEntry`; reads take no lock, writes do. A resolver reads
the call SIDs' table directly on its warm path, through `warm_table`: the one way in from
another module.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from itertools import islice

from ._async.tiered_cache import AsyncTieredCache
from ._core._callsid import validate_call_sid
from ._core._keys import Keys
from ._core._store import CachedMapping
from ._exceptions import InvalidCallSid
from ._models import Resolution
from ._sync.tiered_cache import TieredCache

__all__ = ["MemoryCache", "MemoryEntry", "warm_table"]


class MemoryEntry:
    """What `MemoryCache` keeps per key: a `CachedMapping`'s fields unboxed into slots (a pydantic
    model costs ~575 B, this ~110), its expiry, and the `Resolution` built on its first warm read.
    Public-internal: the resolver's warm path reads `conversation_id`, `agent_id`, `expires`,
    `resolution` and `to_resolution()` of the entries `warm_table` gives it, and writes none.

    Both directions of one conversation share one entry, and each table's key is the entry's own
    id string, so a conversation costs two dict slots, one entry and its two ids.
    """

    __slots__ = (
        "agent_id",
        "call_ids",
        "call_sid",
        "conversation_id",
        "expires",
        "primed",
        "resolution",
        "start_time_unix_secs",
        "status",
    )

    def __init__(self, value: CachedMapping, expires: float) -> None:
        self.call_sid = value.call_sid
        self.conversation_id = value.conversation_id
        self.agent_id = value.agent_id
        self.status = value.status
        self.start_time_unix_secs = value.start_time_unix_secs
        self.primed = value.primed
        self.call_ids = value.call_ids
        self.expires = expires
        self.resolution: Resolution | None = None

    def mapping(self) -> CachedMapping:
        """The `CachedMapping` this entry holds, rebuilt without validation: its fields were
        validated when the mapping was first built."""
        return CachedMapping.model_construct(
            call_sid=self.call_sid,
            conversation_id=self.conversation_id,
            agent_id=self.agent_id,
            status=self.status,
            start_time_unix_secs=self.start_time_unix_secs,
            primed=self.primed,
            call_ids=self.call_ids,
        )

    def to_resolution(self) -> Resolution:
        """The answer this entry gives, built once: `Resolution` is frozen, so callers share it."""
        found = self.resolution
        if found is None:
            found = self.resolution = self.mapping().to_resolution()
        return found

    def own(self, ident: str) -> str:
        """`ident`, as the entry's own string when equal, so the table key costs nothing more."""
        if ident == self.call_sid:
            return self.call_sid
        return self.conversation_id if ident == self.conversation_id else ident


class _Family:
    """The keys of one form, `<prefix><id><suffix>` (`Keys.sid` of one namespace), held in
    one table by their bare id; `accepts` vets the id (call SIDs are validated on store)."""

    __slots__ = ("accepts", "prefix", "suffix", "table", "victims")

    def __init__(self, prefix: str, suffix: str, accepts: Callable[[str], bool]) -> None:
        self.prefix, self.suffix, self.accepts = prefix, suffix, accepts
        self.table: dict[str, MemoryEntry] = {}
        # The next entries to evict, taken from the head in batches: each `iter(dict)` rescans
        # the slots freed at the head since the dict's last resize (O(n) per call), so one
        # eviction at a time would cost ~40 µs at 100,000 entries.
        self.victims: deque[tuple[str, MemoryEntry]] = deque()

    def ident(self, key: str) -> str | None:
        """The id `key` is stored under in this family, or None when the key is not of it."""
        prefix, suffix = self.prefix, self.suffix
        if not (key.startswith(prefix) and key.endswith(suffix)):
            return None
        ident = key[len(prefix) : len(key) - len(suffix)]
        return ident if self.accepts(ident) else None

    def evict_one(self, batch: int) -> bool:
        """Drop the oldest entry (first stored first out); False when the table is empty."""
        while True:
            if not self.victims:
                self.victims.extend(islice(self.table.items(), batch))
                if not self.victims:
                    return False
            key, entry = self.victims.popleft()
            if self.table.get(key) is entry:  # not deleted nor replaced since it was picked
                del self.table[key]
                return True


def _any_key(_ident: str) -> bool:
    return True


def _a_valid_sid(ident: str) -> bool:
    try:
        return validate_call_sid(ident) is ident
    except InvalidCallSid:
        return False


def _a_conversation_id(ident: str) -> bool:
    return bool(ident)


# Stands for the id in a key template: no valid call SID or conversation id holds it.
_SLOT = "\x00"
# Families beyond this (many namespaces in one cache) are stored under their whole key.
MAX_FAMILIES = 16


class MemoryCache:
    """An in-process, thread-safe cache with an exact TTL per entry, evicting the oldest first.

    `ttl` is the default lifetime in seconds; the resolver gives negative entries their own,
    shorter one. `maxsize` bounds the entries; when it is reached, the entries stored first go
    first (FIFO: reading an entry does not keep it). `clock` (monotonic seconds) is injectable
    for tests. Safe to share between threads and between the sync and async resolvers of one
    process.

    Reads take no lock (a dict lookup is atomic in CPython); writes do. An expired entry is never
    returned, and its memory is reclaimed when it is evicted or replaced. A resolver using this
    cache (or a `TieredCache` in front of which it sits) keys its call SIDs and conversation ids
    by the bare id, validated on store, and answers a warm lookup from it before the plan and the
    single flight (350 to 370 B per conversation, both directions, by tracemalloc).
    """

    def __init__(
        self,
        *,
        maxsize: int = 100_000,
        ttl: float = 24 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if maxsize < 1 or ttl <= 0:
            raise ValueError("maxsize and ttl must be positive")
        self.maxsize = maxsize
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._batch = max(1, min(maxsize // 64, 4096))
        # Registered families first, then the catch-all of whole keys; a key lives in the first
        # family that takes it, so each key has exactly one place.
        self._families: tuple[_Family, ...] = (_Family("", "", _any_key),)

    def __len__(self) -> int:
        return sum(len(family.table) for family in self._families)

    def _place(self, key: str) -> tuple[_Family, str]:
        for family in self._families:
            ident = family.ident(key)
            if ident is not None:
                return family, ident
        raise AssertionError("the catch-all family takes every key")  # pragma: no cover

    def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
        """The cached mappings of `keys`, in order; None where a key has no live entry."""
        now = self.clock()
        out: list[CachedMapping | None] = []
        for key in keys:
            family, ident = self._place(key)
            entry = family.table.get(ident)
            out.append(entry.mapping() if entry is not None and entry.expires > now else None)
        return out

    def set_many(
        self,
        items: Mapping[str, CachedMapping],
        ttl: float | None = None,
        *,
        only_if_absent: bool = False,
    ) -> None:
        """Store each mapping of `items` under its key.

        Args:
            items: Cache key to mapping; the keys of one mapping share one entry.
            ttl: Lifetime in seconds; None takes the cache's default `ttl`.
            only_if_absent: Leave a key that holds a live entry untouched (how a miss is
                written, so that it never replaces a mapping stored meanwhile).
        """
        now = self.clock()
        expires = now + (self.ttl if ttl is None else ttl)
        entries: dict[int, MemoryEntry] = {}  # one entry per mapping: both directions share it
        with self._lock:
            for key, value in items.items():
                family, ident = self._place(key)
                if only_if_absent:
                    held = family.table.get(ident)
                    if held is not None and held.expires > now:
                        continue
                entry = entries.get(id(value))
                if entry is None:
                    entry = entries[id(value)] = MemoryEntry(value, expires)
                family.table[entry.own(ident)] = entry
            self._evict()

    def delete(self, key: str) -> None:
        """Remove `key` (no error when it is absent)."""
        with self._lock:
            family, ident = self._place(key)
            family.table.pop(ident, None)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            for family in self._families:
                family.table.clear()
                family.victims.clear()

    def _evict(self) -> None:
        excess = len(self) - self.maxsize
        while excess > 0:
            largest = max(self._families, key=lambda f: len(f.table))
            if not largest.evict_one(self._batch):  # pragma: no cover - len(self) > 0 here
                return
            excess -= 1

    def _adopt(self, keys: Keys) -> dict[str, MemoryEntry] | None:
        """Key `keys`' call SIDs and conversation ids by the bare id; the call SIDs' table, read
        by the resolver's warm path, or None when the key form cannot be split (no fast path)."""
        sids = self._family(keys.sid(_SLOT), _a_valid_sid)
        self._family(keys.conversation(_SLOT), _a_conversation_id)
        return None if sids is None else sids.table

    def _family(self, template: str, accepts: Callable[[str], bool]) -> _Family | None:
        prefix, slot, suffix = template.partition(_SLOT)
        if not slot or _SLOT in suffix or not (prefix or suffix):
            return None
        with self._lock:
            *known, catch_all = self._families
            for family in known:
                if (family.prefix, family.suffix, family.accepts) == (prefix, suffix, accepts):
                    return family
            if len(known) >= MAX_FAMILIES:
                return None
            family = _Family(prefix, suffix, accepts)
            # Whole keys stored before now belong to the new family: copy them first and drop
            # them after, so that a lock-free reader finds each key in one place or the other.
            moving = [(k, i) for k in catch_all.table if (i := family.ident(k)) is not None]
            for key, ident in moving:
                entry = catch_all.table[key]
                family.table[entry.own(ident)] = entry
            self._families = (*known, family, catch_all)
            for key, _ in moving:
                del catch_all.table[key]
            return family


def warm_table(
    cache: object, keys: Keys
) -> tuple[dict[str, MemoryEntry] | None, Callable[[], float]]:
    """The call SIDs' table a resolver's warm path reads, and the clock its entries expire by.

    Only for a `MemoryCache`, alone or in front of a `TieredCache`/`AsyncTieredCache`, and of
    these exact types: a subclass may override `get_many`, which the warm path must not bypass.
    (None, a clock) for any other backend, whose lookups all go through the plan. The first call
    for a `keys` keys that cache's call SIDs and conversation ids by their bare id.
    """
    if type(cache) is TieredCache or type(cache) is AsyncTieredCache:
        cache = cache.front
    if type(cache) is not MemoryCache:
        return None, time.monotonic
    return cache._adopt(keys), cache.clock
