"""MemoryCache's own behaviour (exact TTLs on an injected clock, FIFO eviction, threads, the key
families its warm table rests on) and the typed seams of `_cache` (kind, locks, views). What
every backend must do is in test_cache_contract.py."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import httpx
import pytest

from callsid_resolver import (
    CallSidResolver,
    ElevenLabsClient,
    MemoryCache,
    NullCache,
    TieredCache,
)
from callsid_resolver._cache import (
    BlockingCacheView,
    BlockingLockView,
    as_async_cache,
    async_flight_lock,
    flight_lock,
    is_async_cache,
)
from callsid_resolver._core._keys import Keys
from callsid_resolver._core._store import CachedMapping, ResolutionCache
from callsid_resolver._memory import MemoryEntry, warm_table

HIT = CachedMapping(call_sid="CA" + "1" * 32, conversation_id="conv_1", agent_id="agent_1")
MISS = CachedMapping(call_sid="CA" + "2" * 32, conversation_id=None)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TestMemoryCache:
    def test_entries_expire_with_their_own_ttl(self) -> None:
        clock = Clock()
        cache = MemoryCache(ttl=3600, clock=clock)
        cache.set_many({"hit": HIT})
        cache.set_many({"miss": MISS}, ttl=30)
        clock.now = 29.9
        assert cache.get_many(["hit", "miss"]) == [HIT, MISS]
        clock.now = 30
        assert cache.get_many(["hit", "miss"]) == [HIT, None]
        clock.now = 3600
        assert cache.get_many(["hit"]) == [None]

    def test_the_entries_stored_first_go_first(self) -> None:
        cache = MemoryCache(maxsize=2)
        cache.set_many({"a": HIT, "b": HIT})
        cache.get_many(["a"])  # reading does not keep an entry (FIFO, lock-free reads)
        cache.set_many({"c": HIT})
        assert cache.get_many(["a", "b", "c"]) == [None, HIT, HIT]
        assert len(cache) == 2

    def test_threads_share_it_safely(self) -> None:
        cache = MemoryCache(maxsize=500)

        def work(n: int) -> None:
            for i in range(2000):
                cache.set_many({f"{n}:{i}": HIT})
                cache.get_many([f"{n}:{i - 1}"])

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(cache) == 500

    def test_rejects_nonsense_sizes(self) -> None:
        with pytest.raises(ValueError, match="positive"):
            MemoryCache(maxsize=0)

    def test_eviction_keeps_the_newest_and_the_bound(self) -> None:
        cache = MemoryCache(maxsize=1000)  # evicts in batches: the test crosses several
        kept: list[str] = []
        for i in range(5000):
            cache.set_many({f"k{i}": HIT})
            kept.append(f"k{i}")
            if i % 7 == 0 and f"k{i - 3}" in kept:
                cache.delete(f"k{i - 3}")  # holes in the order, as forget() makes them
                kept.remove(f"k{i - 3}")
        assert len(cache) == 1000
        everything = [f"k{i}" for i in range(5000)]
        found = cache.get_many(everything)
        assert [k for k, v in zip(everything, found, strict=True) if v is not None] == kept[-1000:]

    def test_only_if_absent_replaces_an_expired_entry(self) -> None:
        clock = Clock()
        cache = MemoryCache(clock=clock)
        cache.set_many({"k": HIT}, ttl=10)
        clock.now = 10
        cache.set_many({"k": MISS}, 30, only_if_absent=True)
        assert cache.get_many(["k"]) == [MISS]

    def test_lock_free_reads_see_whole_entries_while_writers_evict(self) -> None:
        cache = MemoryCache(maxsize=300)
        keys = Keys("threads")
        warm_table(cache, keys)
        mappings = [
            CachedMapping(call_sid=f"CA{i:032x}", conversation_id=f"conv_{i}") for i in range(900)
        ]
        wrong: list[object] = []

        def write(start: int) -> None:
            for m in mappings[start::3]:
                assert m.call_sid is not None
                assert m.conversation_id is not None
                cache.set_many({keys.sid(m.call_sid): m, keys.conversation(m.conversation_id): m})

        def read() -> None:
            for _ in range(3):
                for m in mappings:
                    assert m.call_sid is not None
                    got = cache.get_many([keys.sid(m.call_sid)])[0]
                    if got is not None and got != m:
                        wrong.append(got)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(3)]
        threads += [threading.Thread(target=read) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert wrong == []
        assert len(cache) == 300


def adopt(cache: MemoryCache, keys: Keys) -> dict[str, MemoryEntry] | None:
    """What a resolver's warm path gets from `cache` for `keys`."""
    table, clock = warm_table(cache, keys)
    assert clock is cache.clock
    return table


class TestMemoryCacheKeyFamilies:
    """A resolver's keys are held by their bare id, both directions in one entry (issue #16)."""

    keys = Keys("tenant")
    sid = "CA" + "1" * 32

    def test_both_directions_share_one_entry_keyed_by_the_ids_own_strings(self) -> None:
        cache = MemoryCache()
        sids = adopt(cache, self.keys)
        assert sids is not None
        mapping = HIT.model_copy(update={"call_sid": "".join(["CA", "1" * 32])})
        cache.set_many(
            {self.keys.sid(self.sid): mapping, self.keys.conversation("conv_1"): mapping}
        )
        assert cache.get_many([self.keys.sid(self.sid), self.keys.conversation("conv_1")]) == [
            mapping,
            mapping,
        ]
        ((stored_sid, entry),) = sids.items()
        assert stored_sid is mapping.call_sid  # the key costs no string of its own
        assert entry.to_resolution() is entry.to_resolution()  # built once, then shared
        assert len(cache) == 2

    def test_a_key_whose_sid_fails_validation_is_kept_but_never_in_the_warm_table(self) -> None:
        cache = MemoryCache()
        sids = adopt(cache, self.keys)
        assert sids is not None
        cache.set_many({self.keys.sid("not a sid"): HIT, self.keys.sid(""): HIT})
        assert cache.get_many([self.keys.sid("not a sid"), self.keys.sid("")]) == [HIT, HIT]
        assert sids == {}
        cache.delete(self.keys.sid("not a sid"))
        assert cache.get_many([self.keys.sid("not a sid")]) == [None]

    def test_keys_stored_before_adoption_move_to_their_family(self) -> None:
        cache = MemoryCache()
        cache.set_many({self.keys.sid(self.sid): HIT, "other": MISS})
        sids = adopt(cache, self.keys)
        assert sids is not None
        assert set(sids) == {self.sid}
        assert cache.get_many([self.keys.sid(self.sid), "other"]) == [HIT, MISS]
        assert adopt(cache, self.keys) is sids  # adopting twice changes nothing
        assert len(cache) == 2

    def test_any_key_form_that_holds_the_id_once_is_split_around_it(self) -> None:
        class HashTagged(Keys):  # a Redis Cluster hash tag around the id
            def sid(self, call_sid: str) -> str:
                return f"{self.namespace}:sid:{{{call_sid}}}"

        class Twice(Keys):
            def sid(self, call_sid: str) -> str:
                return f"{call_sid}:{call_sid}"

        cache = MemoryCache()
        sids = adopt(cache, HashTagged("t"))
        assert sids is not None
        cache.set_many({HashTagged("t").sid(self.sid): HIT})
        assert list(sids) == [self.sid]
        assert adopt(cache, Twice("t")) is None  # no warm path; the keys still work, whole
        cache.set_many({Twice("t").sid(self.sid): MISS})
        assert cache.get_many([Twice("t").sid(self.sid), HashTagged("t").sid(self.sid)]) == [
            MISS,
            HIT,
        ]

    def test_overlapping_namespaces_give_each_key_one_place(self) -> None:
        cache = MemoryCache()
        first, nested = Keys("a"), Keys("a:v1:sid:b")
        adopt(cache, first)
        adopt(cache, nested)
        key = nested.sid(self.sid)  # also first.sid("b:v1:sid:CA…"), a valid SIP-style id
        cache.set_many({key: HIT})
        cache.set_many({key: MISS})
        assert cache.get_many([key]) == [MISS]
        assert len(cache) == 1


def test_keys_are_namespaced_and_versioned() -> None:
    keys = Keys("tenant-a")
    assert keys.sid("CA1") == "tenant-a:v1:sid:{CA1}"
    assert keys.conversation("conv_1") == "tenant-a:v1:conv:{conv_1}"
    assert Keys().sid("CA1") != keys.sid("CA1")


def test_cached_entries_report_cache_or_primed() -> None:
    assert HIT.to_resolution().source == "cache"
    primed = HIT.model_copy(update={"primed": True})
    assert primed.to_resolution().source == "primed"


def test_null_cache_remembers_nothing_and_has_no_lock() -> None:
    cache = NullCache()
    cache.set_many({"k": HIT})
    assert cache.get_many(["k", "k"]) == [None, None]
    assert flight_lock(cache) is None
    assert async_flight_lock(cache) is None


class TestWarmTable:
    keys = Keys("warm")

    def test_a_memory_cache_alone_or_in_front_of_a_tiered_cache(self) -> None:
        front = MemoryCache()
        table, _ = warm_table(TieredCache(front, NullCache()), self.keys)
        assert table is not None
        front.set_many({self.keys.sid(HIT.call_sid or ""): HIT})
        assert list(table) == [HIT.call_sid]

    def test_no_table_for_a_subclass_or_another_backend(self) -> None:
        class Counting(MemoryCache):
            pass

        for cache in (Counting(), NullCache(), TieredCache(NullCache(), MemoryCache())):
            assert warm_table(cache, self.keys)[0] is None


class Blocking:
    """A backend of the caller's own, blocking, with a lock."""

    def __init__(self) -> None:
        self.memory = MemoryCache()
        self.held: dict[str, str] = {}

    def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
        return self.memory.get_many(keys)

    def set_many(self, items: Mapping[str, CachedMapping], ttl: float | None = None) -> None:
        self.memory.set_many(items, ttl)  # no only_if_absent: an older backend

    def delete(self, key: str) -> None:
        self.memory.delete(key)

    def claim(self, key: str, ttl: float) -> str | None:
        return None if key in self.held else self.held.setdefault(key, "token")

    def release(self, key: str, token: str) -> None:
        if self.held.get(key) == token:
            del self.held[key]


class Async:
    """A backend of the caller's own, async, with a lock."""

    def __init__(self) -> None:
        self.blocking = Blocking()

    async def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
        return self.blocking.get_many(keys)

    async def set_many(
        self,
        items: Mapping[str, CachedMapping],
        ttl: float | None = None,
        *,
        only_if_absent: bool = False,
    ) -> None:
        self.blocking.set_many(items, ttl)

    async def delete(self, key: str) -> None:
        self.blocking.delete(key)

    async def claim(self, key: str, ttl: float) -> str | None:
        return self.blocking.claim(key, ttl)

    async def release(self, key: str, token: str) -> None:
        self.blocking.release(key, token)


class TestSeams:
    """The kind of a backend of the caller's own is read from its methods; ours are declared."""

    def test_a_blocking_backend_is_viewed_and_its_lock_wrapped(self) -> None:
        backend = Blocking()
        assert not is_async_cache(backend)
        view = as_async_cache(backend)
        assert isinstance(view, BlockingCacheView)
        assert view.wrapped is backend
        assert flight_lock(backend) is backend
        lock = async_flight_lock(backend)
        assert isinstance(lock, BlockingLockView)
        assert lock.wrapped is backend
        assert isinstance(async_flight_lock(view), BlockingLockView)  # the view's is the backend's
        assert flight_lock(view) is None  # the view is async; its lock comes from the backend

    def test_an_async_backend_is_itself_and_has_no_blocking_lock(self) -> None:
        backend = Async()
        assert is_async_cache(backend)
        assert as_async_cache(backend) is backend
        assert async_flight_lock(backend) is backend
        assert flight_lock(backend) is None

    async def test_the_view_passes_only_if_absent_through_and_leaves_it_out_otherwise(
        self,
    ) -> None:
        view = as_async_cache(Blocking())  # its set_many refuses the keyword
        await view.set_many({"k": HIT}, 30)
        assert await view.get_many(["k"]) == [HIT]
        with pytest.raises(TypeError):
            await view.set_many({"k": MISS}, 30, only_if_absent=True)

    async def test_a_wrapped_blocking_lock_behaves_as_the_lock(self) -> None:
        lock = async_flight_lock(Blocking())
        assert lock is not None
        token = await lock.claim("k", 5)
        assert token is not None
        assert await lock.claim("k", 5) is None
        await lock.release("k", token)
        assert await lock.claim("k", 5) == token

    def test_a_tiered_cache_lock_is_its_back_s(self) -> None:
        back = Blocking()
        assert flight_lock(TieredCache(MemoryCache(), back)) is back
        assert flight_lock(TieredCache(MemoryCache(), MemoryCache())) is None
        assert flight_lock(MemoryCache()) is None

    def test_a_backend_without_a_lock_is_a_resolution_cache_still(self) -> None:
        assert isinstance(MemoryCache(), ResolutionCache)
        assert isinstance(NullCache(), ResolutionCache)


def test_the_blocking_resolver_refuses_an_asyncio_cache() -> None:
    class AsyncOnly:
        async def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
            return [None] * len(keys)

        async def set_many(
            self,
            items: Mapping[str, CachedMapping],
            ttl: float | None = None,
            *,
            only_if_absent: bool = False,
        ) -> None:
            return None

        async def delete(self, key: str) -> None:
            return None

    client = ElevenLabsClient(
        "test-key", transport=httpx.MockTransport(lambda r: httpx.Response(500))
    )
    with pytest.raises(TypeError, match="AsyncCallSidResolver"):
        CallSidResolver(client, cache=AsyncOnly())  # type: ignore[arg-type]
    CallSidResolver(client, cache=MemoryCache())  # a blocking one is fine
    client.close()
