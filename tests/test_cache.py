"""One contract for every cache backend (cachetools' `CacheTestMixin` idea), plus MemoryCache's
own TTL and size behaviour with an injected timer."""

from __future__ import annotations

import threading

import pytest

from callsid_resolver import CachedMapping, CacheKeys, MemoryCache, NullCache, ResolutionCache

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

    def test_least_recently_used_entries_go_first(self) -> None:
        cache = MemoryCache(maxsize=2)
        cache.set_many({"a": HIT, "b": HIT})
        cache.get_many(["a"])
        cache.set_many({"c": HIT})
        assert cache.get_many(["a", "b", "c"]) == [HIT, None, HIT]
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
