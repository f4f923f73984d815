"""One contract for every cache backend (cachetools' `CacheTestMixin` idea), plus MemoryCache's
own TTL and size behaviour with an injected timer."""

from __future__ import annotations

import threading

import pytest

from callsid_resolver import CachedMapping, MemoryCache, NullCache, ResolutionCache
from callsid_resolver._core._keys import Keys as CacheKeys

HIT = CachedMapping(call_sid="CA" + "1" * 32, conversation_id="conv_1", agent_id="agent_1")
MISS = CachedMapping(call_sid="CA" + "2" * 32, conversation_id=None)


class Timer:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class CacheContract:
    remembers = True

    def make(self) -> ResolutionCache:
        raise NotImplementedError

    def test_is_a_resolution_cache(self) -> None:
        assert isinstance(self.make(), ResolutionCache)

    def test_round_trip_and_delete(self) -> None:
        cache = self.make()
        cache.set_many({"a": HIT, "b": MISS})
        expected = [HIT, MISS, None] if self.remembers else [None, None, None]
        assert cache.get_many(["a", "b", "c"]) == expected
        cache.delete("a")
        cache.delete("never-set")
        assert cache.get_many(["a"]) == [None]

    def test_only_if_absent_never_replaces_an_entry(self) -> None:
        cache = self.make()
        cache.set_many({"kept": HIT})
        cache.set_many({"kept": MISS, "new": MISS}, 30, only_if_absent=True)
        expected = [HIT, MISS] if self.remembers else [None, None]
        assert cache.get_many(["kept", "new"]) == expected


class TestMemoryCache(CacheContract):
    def make(self) -> ResolutionCache:
        return MemoryCache()

    def test_entries_expire_with_their_own_ttl(self) -> None:
        timer = Timer()
        cache = MemoryCache(ttl=3600, timer=timer)
        cache.set_many({"hit": HIT})
        cache.set_many({"miss": MISS}, ttl=30)
        timer.now = 29.9
        assert cache.get_many(["hit", "miss"]) == [HIT, MISS]
        timer.now = 30
        assert cache.get_many(["hit", "miss"]) == [HIT, None]
        timer.now = 3600
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
        timer = Timer()
        cache = MemoryCache(timer=timer)
        cache.set_many({"k": HIT}, ttl=10)
        timer.now = 10
        cache.set_many({"k": MISS}, 30, only_if_absent=True)
        assert cache.get_many(["k"]) == [MISS]

    def test_lock_free_reads_see_whole_entries_while_writers_evict(self) -> None:
        cache = MemoryCache(maxsize=300)
        keys = CacheKeys("threads")
        cache._adopt(keys)
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


class TestMemoryCacheKeyFamilies:
    """A resolver's keys are held by their bare id, both directions in one entry (issue #16)."""

    keys = CacheKeys("tenant")
    sid = "CA" + "1" * 32

    def test_both_directions_share_one_entry_keyed_by_the_ids_own_strings(self) -> None:
        cache = MemoryCache()
        sids = cache._adopt(self.keys)
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
        conversations = next(f.table for f in cache._families if ":conv:" in f.prefix)
        assert conversations["conv_1"] is entry
        assert len(cache) == 2

    def test_a_key_whose_sid_fails_validation_is_kept_but_never_in_the_warm_table(self) -> None:
        cache = MemoryCache()
        sids = cache._adopt(self.keys)
        assert sids is not None
        cache.set_many({self.keys.sid("not a sid"): HIT, self.keys.sid(""): HIT})
        assert cache.get_many([self.keys.sid("not a sid"), self.keys.sid("")]) == [HIT, HIT]
        assert sids == {}
        cache.delete(self.keys.sid("not a sid"))
        assert cache.get_many([self.keys.sid("not a sid")]) == [None]

    def test_keys_stored_before_adoption_move_to_their_family(self) -> None:
        cache = MemoryCache()
        cache.set_many({self.keys.sid(self.sid): HIT, "other": MISS})
        sids = cache._adopt(self.keys)
        assert sids is not None
        assert set(sids) == {self.sid}
        assert cache.get_many([self.keys.sid(self.sid), "other"]) == [HIT, MISS]
        assert cache._adopt(self.keys) is sids  # adopting twice changes nothing
        assert len(cache) == 2

    def test_any_key_form_that_holds_the_id_once_is_split_around_it(self) -> None:
        class HashTagged(CacheKeys):  # a Redis Cluster hash tag around the id
            def sid(self, call_sid: str) -> str:
                return f"{self.namespace}:sid:{{{call_sid}}}"

        class Twice(CacheKeys):
            def sid(self, call_sid: str) -> str:
                return f"{call_sid}:{call_sid}"

        cache = MemoryCache()
        sids = cache._adopt(HashTagged("t"))
        assert sids is not None
        cache.set_many({HashTagged("t").sid(self.sid): HIT})
        assert list(sids) == [self.sid]
        assert cache._adopt(Twice("t")) is None  # no warm path; the keys still work, whole
        cache.set_many({Twice("t").sid(self.sid): MISS})
        assert cache.get_many([Twice("t").sid(self.sid), HashTagged("t").sid(self.sid)]) == [
            MISS,
            HIT,
        ]

    def test_overlapping_namespaces_give_each_key_one_place(self) -> None:
        cache = MemoryCache()
        first, nested = CacheKeys("a"), CacheKeys("a:v1:sid:b")
        cache._adopt(first)
        cache._adopt(nested)
        key = nested.sid(self.sid)  # also first.sid("b:v1:sid:CA…"), a valid SIP-style id
        cache.set_many({key: HIT})
        cache.set_many({key: MISS})
        assert cache.get_many([key]) == [MISS]
        assert len(cache) == 1


class TestNullCache(CacheContract):
    remembers = False

    def make(self) -> ResolutionCache:
        return NullCache()


def test_keys_are_namespaced_and_versioned() -> None:
    keys = CacheKeys("tenant-a")
    assert keys.sid("CA1") == "tenant-a:v1:sid:{CA1}"
    assert keys.conversation("conv_1") == "tenant-a:v1:conv:{conv_1}"
    assert CacheKeys().sid("CA1") != keys.sid("CA1")


def test_cached_entries_report_cache_or_primed() -> None:
    assert HIT.to_resolution().source == "cache"
    primed = HIT.model_copy(update={"primed": True})
    assert primed.to_resolution().source == "primed"
