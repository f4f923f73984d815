"""`remember_tool_call`: the ids a tool received become a cache entry for the whole fleet."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import redis

from callsid_resolver import (
    AsyncCallSidResolver,
    AsyncElevenLabsClient,
    CachedMapping,
    CacheUnavailable,
    CallRef,
    CallSidResolver,
    ElevenLabsClient,
    InvalidCallSid,
    InvalidConversationId,
    MemoryCache,
    RedisCache,
)
from callsid_resolver._core._keys import Keys
from callsid_resolver._priming import ToolCallMemo

from ..conftest import API_KEY, REDIS_URL, FakeApi, make_conversation, sid_of

SID = sid_of(7)
CONV = "conv_test00000000000000000000007"
SIP_ID = "7c0a1e5e-3f2b-4c1d-9b8a-0d2f6e4a1b23"


class CountingCache(MemoryCache):
    """A MemoryCache that counts writes and can fail the next ones."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[dict[str, CachedMapping]] = []
        self.fail_next = 0

    def __bool__(self) -> bool:
        return True  # empty, yet a cache (`Both` tests `cache or MemoryCache()`)

    def set_many(self, items: Mapping[str, CachedMapping], ttl: float | None = None) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("cache down")
        self.writes.append(dict(items))
        super().set_many(items, ttl)

    def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
        return super().get_many(keys)


def test_a_primed_sid_resolves_with_no_request(make: Any, api: FakeApi) -> None:
    api.add(make_conversation(7, status="in-progress"))
    both = make()
    ref = both.remember_tool_call(SID, CONV, agent_id="agent_x")
    assert ref == CallRef(call_sid=SID, conversation_id=CONV, agent_id="agent_x", written=True)
    assert ref.carrier == "twilio"
    result = both.resolve(SID)
    assert (result.conversation_id, result.source, result.requests) == (CONV, "primed", 0)
    assert result.agent_id == "agent_x"
    assert sum(api.counts.values()) == 0


def test_both_directions_are_cached(make: Any) -> None:
    cache = CountingCache()
    both = make(cache=cache, namespace="ns1")
    both.remember_tool_call(SIP_ID, CONV)
    keys = Keys("ns1")
    by_sid, by_conv = cache.get_many([keys.sid(SIP_ID), keys.conversation(CONV)])
    assert by_sid is not None
    assert by_conv is not None
    assert (by_sid.conversation_id, by_conv.call_sid) == (CONV, SIP_ID)
    assert by_sid.primed


def test_one_cache_write_per_distinct_call(make: Any) -> None:
    cache = CountingCache()
    both = make(cache=cache)
    refs = [both.remember_tool_call(SID, CONV) for _ in range(10)]
    assert [r.written for r in refs] == [True] + [False] * 9
    assert len(cache.writes) == 1
    both.remember_tool_call(SIP_ID, "conv_other")
    # A different conversation for a known SID is news (a re-dial reusing an id): written too.
    both.remember_tool_call(SID, "conv_redialled")
    assert len(cache.writes) == 3
    assert both.resolve(SID).conversation_id == "conv_redialled"


def test_a_failed_write_is_not_memoised(make: Any) -> None:
    cache = CountingCache()
    both = make(cache=cache)
    cache.fail_next = 1
    with pytest.raises(CacheUnavailable) as info:
        both.remember_tool_call(SID, CONV)
    assert isinstance(info.value.__cause__, ConnectionError)
    assert both.remember_tool_call(SID, CONV).written
    assert len(cache.writes) == 1


@pytest.mark.parametrize(
    ("call_sid", "conversation_id", "error"),
    [
        ("", CONV, InvalidCallSid),
        ("CA123", CONV, None),  # not Twilio's form, but a plausible SIP id: accepted
        ("CA" + "z" * 32, CONV, InvalidCallSid),
        ("CA 1", CONV, InvalidCallSid),
        (SID, "", InvalidConversationId),
        (SID, "conv/../x", InvalidConversationId),
        (SID, " conv_x", InvalidConversationId),
        (SID, "conv\x00x", InvalidConversationId),
        (SID, "c" * 300, InvalidConversationId),
        (SID, None, InvalidConversationId),
    ],
)
def test_bad_ids_are_refused_before_any_write(
    make: Any, call_sid: str, conversation_id: Any, error: type[Exception] | None
) -> None:
    cache = CountingCache()
    both = make(cache=cache)
    if error is None:
        assert both.remember_tool_call(call_sid, conversation_id).carrier == "sip"
        return
    with pytest.raises(error) as raised:
        both.remember_tool_call(call_sid, conversation_id)
    assert isinstance(raised.value, ValueError)
    assert cache.writes == []


def test_the_memo_forgets_after_its_ttl() -> None:
    now = [0.0]
    memo = ToolCallMemo(maxsize=2, ttl=10.0, clock=lambda: now[0])
    keys = Keys()
    ref, entries = memo.prepare(keys, SID, CONV, None)
    assert len(entries) == 2
    memo.written(ref)
    assert memo.prepare(keys, SID, CONV, None)[1] == {}
    now[0] = 11.0
    assert len(memo.prepare(keys, SID, CONV, None)[1]) == 2
    # Bounded: the oldest pairs make room.
    for n in range(5):
        memo.written(memo.prepare(keys, sid_of(n), CONV, None)[0])
    assert len(memo) == 2


async def test_another_process_on_the_same_redis_resolves_for_free(
    namespace: str, api: FakeApi
) -> None:
    """Two resolvers sharing only Redis: one primes, the other resolves with 0 requests."""
    import httpx

    api.add(make_conversation(7, status="in-progress"))
    redis_a, redis_b = redis.Redis.from_url(REDIS_URL), redis.Redis.from_url(REDIS_URL)
    async with AsyncElevenLabsClient(API_KEY, transport=httpx.MockTransport(api)) as aclient:
        tool_side = AsyncCallSidResolver(aclient, cache=RedisCache(redis_a), namespace=namespace)
        await tool_side.remember_tool_call(SID, CONV)
    with ElevenLabsClient(API_KEY, transport=httpx.MockTransport(api)) as client:
        backend = CallSidResolver(client, cache=RedisCache(redis_b), namespace=namespace)
        result = backend.resolve(SID)
    redis_a.close()
    redis_b.close()
    assert (result.conversation_id, result.source, result.requests) == (CONV, "primed", 0)
    assert sum(api.counts.values()) == 0
