from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from callsid_resolver import (
    AsyncCallSidResolver,
    AsyncElevenLabsClient,
    CachedMapping,
    CallSidResolver,
    ConversationNotFound,
    ElevenLabsClient,
    InvalidCallSid,
    InvalidHint,
    MemoryCache,
    NullCache,
    RetryPolicy,
    ServerError,
    TieredCache,
)
from callsid_resolver._core._keys import Keys
from callsid_resolver.testing import Emulator, load_profile
from callsid_resolver.testing._http import Dropped

from .conftest import AGENT, API_KEY, FakeApi, make_conversation, recording, sid_of


@pytest.fixture(params=["documented", "observed"])
def api(request: pytest.FixtureRequest) -> FakeApi:
    """Every resolver test runs against both readings of the real API (see `EmulatorProfile`)."""
    fake = FakeApi()
    fake.profile = load_profile(request.param)
    return fake


def observed(api: FakeApi) -> bool:
    return api.profile.live_call_hides_ids


class Both:
    """Runs one resolver call through the sync or the async twin, so every test covers both."""

    def __init__(self, mode: str, api: FakeApi, **settings: Any) -> None:
        self.mode = mode
        self.api = api
        self.cache = settings.pop("cache", None) or MemoryCache(clock=self.clock)
        self.now = 0.0
        transport = httpx.MockTransport(api)
        if mode == "async" and "sleep" in settings:  # tests pass a blocking one
            blocking = settings["sleep"]

            async def sleep(seconds: float) -> None:
                blocking(seconds)

            settings["sleep"] = sleep
        if mode == "sync":
            self.client: Any = ElevenLabsClient(API_KEY, transport=transport)
            self.resolver: Any = CallSidResolver(self.client, cache=self.cache, **settings)
        else:
            self.client = AsyncElevenLabsClient(API_KEY, transport=transport)
            self.resolver = AsyncCallSidResolver(self.client, cache=self.cache, **settings)

    def clock(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.resolver, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            return asyncio.run(result) if self.mode == "async" else result

        return call

    def close(self) -> None:
        if self.mode == "sync":
            self.client.close()
        else:
            asyncio.run(self.client.aclose())


@pytest.fixture(params=["sync", "async"])
def make(request: pytest.FixtureRequest, api: FakeApi) -> Iterator[Any]:
    made: list[Both] = []

    def factory(**settings: Any) -> Both:
        made.append(Both(request.param, api, **settings))
        return made[-1]

    yield factory
    for both in made:
        both.close()


def history(api: FakeApi, n: int, *, live: int = 0) -> None:
    """n conversations; index n-1 is the newest; the `live` newest are in progress."""
    api.add(
        *(make_conversation(i, status="in-progress" if i >= n - live else "done") for i in range(n))
    )


def test_filter_hit_costs_two_requests_and_is_verified(make: Any, api: FakeApi) -> None:
    history(api, 300)
    r = make().resolve(sid_of(42), agent_id=AGENT)
    assert (r.conversation_id, r.source, r.requests) == ("conv_test" + f"{42:023d}", "filter", 2)
    assert api.counts == {"list": 1, "get": 1}
    assert (
        api.requests[0].url.params["dynamic_variable_filter"] == f"system__call_sid:eq:{sid_of(42)}"
    )
    assert api.requests[0].url.params["agent_id"] == AGENT


def test_cached_sid_costs_nothing(make: Any, api: FakeApi) -> None:
    history(api, 10)
    resolver = make()
    first = resolver.resolve(sid_of(3))
    api.counts.clear()
    again = resolver.resolve(sid_of(3))
    assert (again.source, again.requests, again.conversation_id) == (
        "cache",
        0,
        first.conversation_id,
    )
    assert api.counts.total() == 0


def test_rejected_filter_falls_back_to_scan_and_is_not_asked_again(make: Any, api: FakeApi) -> None:
    history(api, 300)
    api.filter_mode = "reject"
    resolver = make()
    r = resolver.resolve(sid_of(300 - 250))  # the 250th most recent
    assert r.source == "scan"
    # 1 rejected filter + 1 live list (nothing live) + 3 scan pages + 250 GETs, plus the GETs
    # started while the matching one was in flight: never past the page being read.
    assert api.counts["list"] == 5
    assert 250 <= api.counts["get"] <= 300
    assert r.requests == api.counts.total()
    api.counts.clear()
    resolver.resolve(sid_of(300 - 260))  # its neighbours were cached by the first scan
    assert "dynamic_variable_filter" not in str(api.requests[-1].url)


def test_scan_caches_every_mapping_it_reads(make: Any, api: FakeApi) -> None:
    history(api, 120)
    api.filter_mode = "reject"
    resolver = make(concurrency=1)
    resolver.resolve(sid_of(0))  # the oldest: the scan reads all 120
    api.counts.clear()
    for i in (1, 60, 119):
        assert resolver.resolve(sid_of(i)).source == "cache"
    assert api.counts.total() == 0


def test_ignored_filter_never_returns_the_wrong_conversation(make: Any, api: FakeApi) -> None:
    history(api, 50)
    api.filter_mode = "ignore"
    resolver = make()
    r = resolver.resolve(sid_of(10))
    assert r.conversation_id == f"conv_test{10:023d}"
    assert r.source == "scan"
    assert resolver.capabilities.dynamic_variable_filter.value == "ignored"
    api.counts.clear()
    api.requests.clear()
    resolver.resolve(sid_of(5))
    assert all("dynamic_variable_filter" not in str(q.url) for q in api.requests)


def test_live_step_finds_an_unindexed_live_call(make: Any, api: FakeApi) -> None:
    history(api, 200, live=3)
    live = make_conversation(500, status="in-progress")
    del live["conversation_initiation_client_data"]["dynamic_variables"]["system__call_sid"]
    api.add(live)  # not findable by the variable filter, as a call too new to be indexed
    resolver = make()
    resolver.resolve(sid_of(7))  # teaches the resolver that the filter works
    api.counts.clear()
    api.requests.clear()
    if observed(api):
        # Its GET shows no phone record until it ends: nothing to verify, so no answer.
        with pytest.raises(ConversationNotFound, match="The call is live") as info:
            resolver.resolve(sid_of(500))
        assert info.value.live
        assert info.value.searched is not None
        assert info.value.searched.hidden_live == 4
    else:
        assert resolver.resolve(sid_of(500)).source == "live"
    assert api.counts["list"] == 3  # filters on system__call_sid and system__call_id, live calls
    assert api.counts["get"] <= 4  # the live calls only, not the 200 in history
    assert api.requests[2].url.params.get_list("exclude_statuses") == [
        "processing",
        "done",
        "failed",
    ]


def test_a_tool_during_the_call_gets_its_conversation_or_a_useful_miss(
    make: Any, api: FakeApi
) -> None:
    history(api, 100, live=9)
    call = make_conversation(500, status="in-progress")
    api.add(call)
    resolver = make()
    resolver.resolve(sid_of(7))  # proves the filter
    api.counts.clear()
    if not observed(api):
        r = resolver.resolve(sid_of(500), in_progress=True)
        assert (r.source, r.requests, r.matched_by) == ("filter", 2, "phone_call.call_sid")
        return
    with pytest.raises(ConversationNotFound) as info:
        resolver.resolve(sid_of(500), in_progress=True)
    message = str(info.value)
    for advice in ("live", "until it ends", "system__conversation_id", "remember()"):
        assert advice in message
    assert api.counts == {"list": 3, "get": 10}  # two blind filters, live list, 10 live GETs
    api.counts.clear()
    with pytest.raises(ConversationNotFound):
        resolver.resolve(sid_of(500), in_progress=True)
    assert api.counts == {"list": 3}  # remembered: the live calls are not read again
    call["status"] = "done"  # the call ends: the remembered "no id seen" must not hide it
    api.counts.clear()
    r = resolver.resolve(sid_of(500), in_progress=True)
    assert (r.conversation_id, r.source, r.requests) == (call["conversation_id"], "filter", 2)


def test_a_remembered_live_call_is_read_again_once_listed_as_ended(make: Any, api: FakeApi) -> None:
    history(api, 20)
    api.filter_mode = "reject"  # no filter: only the listing can tell that the call ended
    call = make_conversation(500, status="in-progress")
    api.add(call)
    resolver = make(live_ttl=3600)
    if observed(api):
        with pytest.raises(ConversationNotFound):
            resolver.resolve(sid_of(500))
        call["status"] = "done"
    r = resolver.resolve(sid_of(500))
    assert r.conversation_id == call["conversation_id"]
    assert r.source == ("scan" if observed(api) else "live")


def test_in_progress_never_scans_the_history(make: Any, api: FakeApi) -> None:
    history(api, 300)
    api.filter_mode = "reject"
    resolver = make()
    with pytest.raises(ConversationNotFound) as info:
        resolver.resolve(sid_of(5), in_progress=True)  # finished long ago: not looked for
    assert info.value.searched is not None
    assert info.value.searched.steps == ("filter", "live")
    assert api.counts == {"list": 2}  # the rejected filter, the (empty) live list
    api.counts.clear()
    with pytest.raises(ConversationNotFound):  # an in-progress miss is not cached
        resolver.resolve(sid_of(5), in_progress=True)
    assert api.counts == {"list": 1}  # the live list again (the filter is known to be rejected)
    assert resolver.resolve(sid_of(5)).source == "scan"


def test_not_found_says_what_was_searched_and_caches_the_miss(make: Any, api: FakeApi) -> None:
    history(api, 30)
    api.filter_mode = "reject"
    resolver = make()
    with pytest.raises(ConversationNotFound) as info:
        resolver.resolve("CA" + "f" * 32, started_after=1_786_000_000)
    searched = info.value.searched
    assert searched is not None
    assert searched.steps == ("filter", "live", "scan")
    assert searched.checked == 30
    assert searched.requests == api.counts.total()
    assert "30 conversation(s) checked" in str(info.value)
    lists = [q for q in api.requests if q.url.path.endswith("/conversations")]
    assert all(q.url.params["call_start_after_unix"] == "1786000000" for q in lists)
    api.counts.clear()
    with pytest.raises(ConversationNotFound) as again:
        resolver.resolve("CA" + "f" * 32)
    assert again.value.cached
    assert api.counts.total() == 0


def test_negative_entries_expire_after_negative_ttl(make: Any, api: FakeApi) -> None:
    resolver = make(negative_ttl=30)
    with pytest.raises(ConversationNotFound):
        resolver.resolve(sid_of(1))
    api.add(make_conversation(1))  # the call shows up later
    resolver.now += 29
    with pytest.raises(ConversationNotFound):
        resolver.resolve(sid_of(1))
    resolver.now += 2
    assert resolver.resolve(sid_of(1)).source == "filter"


def test_trusted_filter_miss_skips_the_deep_scan(make: Any, api: FakeApi) -> None:
    history(api, 400)
    resolver = make()
    resolver.resolve(sid_of(1))  # proves the filter works
    api.counts.clear()
    with pytest.raises(ConversationNotFound) as info:
        resolver.resolve("CA" + "e" * 32)
    assert info.value.searched is not None
    assert info.value.searched.steps == ("filter", "live")
    assert api.counts == {"list": 3}  # system__call_sid, system__call_id, live calls


def test_max_scan_bounds_the_walk(make: Any, api: FakeApi) -> None:
    history(api, 500)
    api.filter_mode = "reject"
    with pytest.raises(ConversationNotFound) as info:
        make(max_scan=200, concurrency=4).resolve(sid_of(0))
    assert info.value.searched is not None
    assert info.value.searched.pages == 3
    assert api.counts["get"] == 200


def test_hints_narrow_every_listing(make: Any, api: FakeApi) -> None:
    history(api, 5)
    api.filter_mode = "reject"
    after = datetime(2026, 8, 1, tzinfo=timezone.utc)
    with pytest.raises(ConversationNotFound):
        make().resolve(
            "CA" + "d" * 32,
            agent_id=AGENT,
            phone_number_id="phnum_x",
            started_after=after,
            started_before=1_900_000_000,
            initiation_source="twilio",
        )
    for request in api.requests:
        if request.url.path.endswith("/conversations"):
            p = request.url.params
            assert p["agent_id"] == AGENT
            assert p["phone_number_ids"] == "phnum_x"
            assert p["call_start_after_unix"] == str(int(after.timestamp()))
            assert p["call_start_before_unix"] == "1900000000"
            assert p["conversation_initiation_source"] == "twilio"


def test_web_conversations_are_not_fetched(make: Any, api: FakeApi) -> None:
    api.add(*(make_conversation(100 + i, phone=False) for i in range(40)), make_conversation(0))
    api.filter_mode = "reject"
    r = make().resolve(sid_of(0))
    assert r.source == "scan"
    assert api.counts["get"] == 1


def test_conversation_deleted_mid_scan_is_skipped(make: Any, api: FakeApi) -> None:
    history(api, 3)
    api.filter_mode = "reject"
    api.add({**make_conversation(9), "conversation_id": "conv_gone"})
    real_get = api._get
    api._get = lambda cid: real_get("missing" if cid == "conv_gone" else cid)  # type: ignore[method-assign]
    assert make(concurrency=1).resolve(sid_of(1)).source == "scan"


def test_server_errors_during_a_scan_propagate(make: Any, api: FakeApi) -> None:
    history(api, 3)
    resolver = make()
    resolver.client.retry = RetryPolicy(max_attempts=1)
    api.faults.append(httpx.Response(502))
    with pytest.raises(ServerError):
        resolver.resolve(sid_of(1))


def test_agent_hint_must_match_the_verified_conversation(make: Any, api: FakeApi) -> None:
    api.add(make_conversation(1, agent_id="agent_other"))
    api.filter_mode = "ignore"
    with pytest.raises(ConversationNotFound):
        make().resolve(sid_of(1), agent_id=AGENT)


def test_remember_primes_at_zero_cost(make: Any, api: FakeApi) -> None:
    resolver = make()
    out = recording("twilio_outbound_call_response")
    resolver.remember(out["callSid"], out["conversation_id"], agent_id=AGENT)
    r = resolver.resolve(out["callSid"])
    assert (r.source, r.requests, r.conversation_id) == ("primed", 0, out["conversation_id"])
    resolver.forget(out["callSid"])
    with pytest.raises(ConversationNotFound):
        resolver.resolve(out["callSid"])


@pytest.mark.parametrize("bad", ["", " CA1", "CA\n", "CAzz" + "0" * 30, "a b", "x" * 300, 42])
def test_invalid_call_sids_are_refused_before_io(make: Any, api: FakeApi, bad: Any) -> None:
    with pytest.raises(InvalidCallSid):
        make().resolve(bad)
    assert api.counts.total() == 0


SIP_SID = "7f1e9a52-3c1d-4c8e-9f00-5a1b2c3d4e5f"


def sip_conversation(index: int, call_id: str) -> dict[str, Any]:
    conv = make_conversation(index)
    conv["metadata"]["phone_call"] = {
        "type": "sip_trunking", "direction": "inbound", "phone_number_id": "phnum_sip",
        "agent_number": "+15550100200", "external_number": "+15550100789",
        "call_sid": SIP_SID, "call_id": call_id,
    }  # fmt: skip
    conv["metadata"]["conversation_initiation_source"] = "sip_trunk"
    variables = conv["conversation_initiation_client_data"]["dynamic_variables"]
    variables |= {"system__call_sid": SIP_SID, "system__call_id": call_id}
    return conv


def test_a_sip_call_is_found_by_its_uuid(make: Any, api: FakeApi) -> None:
    history(api, 30)
    conv = sip_conversation(777, "a84b4c76e66710@pbx.example.com")
    api.add(conv)
    r = make().resolve(SIP_SID)
    assert (r.conversation_id, r.call_sid, r.matched_by) == (
        conv["conversation_id"],
        SIP_SID,
        "phone_call.call_sid",
    )
    # Observed: `system__call_sid` is null on SIP calls, so no filter finds the UUID and a miss
    # of a non-Twilio id is never trusted: the scan does.
    assert r.source == ("scan" if observed(api) else "filter")


def test_a_sip_call_is_found_by_its_call_id_through_the_filter(make: Any, api: FakeApi) -> None:
    history(api, 30)
    conv = sip_conversation(777, "a84b4c76e66710@pbx.example.com")
    api.add(conv)
    resolver = make()
    resolver.resolve(sid_of(3))  # proves the filter on system__call_sid
    api.counts.clear()
    api.requests.clear()
    r = resolver.resolve("a84b4c76e66710@pbx.example.com")
    assert (r.conversation_id, r.source, r.requests) == (conv["conversation_id"], "filter", 3)
    assert r.matched_by == "phone_call.call_id"
    assert r.call_sid == "a84b4c76e66710@pbx.example.com"
    filters = [q.url.params.get("dynamic_variable_filter") for q in api.requests[:2]]
    assert filters == [f"{name}:eq:a84b4c76e66710@pbx.example.com" for name in (
        "system__call_sid", "system__call_id")]  # fmt: skip
    api.counts.clear()
    assert resolver.resolve(SIP_SID).source == "cache"  # every id it showed was cached
    assert api.counts.total() == 0


def test_a_call_id_the_filter_may_not_express_is_looked_for_among_sip_calls(
    make: Any, api: FakeApi
) -> None:
    call_id = "a84b4c76e66710@[2001:db8::1]"  # RFC 3261: `:` inside the value
    history(api, 30)
    conv = sip_conversation(777, call_id)
    api.add(conv)
    r = make().resolve(call_id)
    assert (r.conversation_id, r.source, r.matched_by) == (
        conv["conversation_id"],
        "filter",
        "phone_call.call_id",
    )
    filters = [q.url.params.get("dynamic_variable_filter") for q in api.requests]
    assert filters[0] == "system__call_id:neq:"  # only the calls that have a Call-ID
    assert f"eq:{call_id}" not in str(filters)
    assert api.counts == {"list": 1, "get": 1}  # the 30 Twilio calls were never read


def test_in_progress_narrows_the_call_id_walk_to_live_calls(make: Any, api: FakeApi) -> None:
    call_id = "a84b4c76e66710@[2001:db8::1]"
    history(api, 30)
    conv = sip_conversation(777, call_id)
    conv["status"] = "in-progress"
    api.add(conv)
    resolver = make()
    if observed(api):  # a live call shows no id: nothing can find it until it ends
        with pytest.raises(ConversationNotFound, match="The call is live"):
            resolver.resolve(call_id, in_progress=True)
    else:
        assert resolver.resolve(call_id, in_progress=True).source == "filter"
    walk = api.requests[0].url.params
    assert walk["dynamic_variable_filter"] == "system__call_id:neq:"
    assert walk.get_list("exclude_statuses") == ["processing", "done", "failed"]


def test_a_call_id_with_a_colon_falls_back_to_the_scan(make: Any, api: FakeApi) -> None:
    call_id = "a84b4c76e66710@[2001:db8::1]"
    history(api, 30)
    conv = sip_conversation(777, call_id)
    # No variables at all: its Call-ID shows in the phone record only, the narrowed walk
    # cannot see it.
    conv["conversation_initiation_client_data"]["dynamic_variables"] = {}
    api.add(conv)
    r = make().resolve(call_id)
    assert (r.conversation_id, r.source) == (conv["conversation_id"], "scan")


def test_single_flight_threads_share_one_lookup(api: FakeApi) -> None:
    history(api, 200)
    api.filter_mode = "reject"
    gate = threading.Event()
    real = api._list

    def slow_list(params: httpx.QueryParams) -> httpx.Response:
        gate.wait(5)
        return real(params)

    api._list = slow_list  # type: ignore[method-assign]
    with ElevenLabsClient(API_KEY, transport=httpx.MockTransport(api)) as client:
        resolver = CallSidResolver(client, cache=NullCache())
        results: list[Any] = []
        threads = [
            threading.Thread(target=lambda: results.append(resolver.resolve(sid_of(150))))
            for _ in range(100)
        ]
        for t in threads:
            t.start()
        gate.set()
        for t in threads:
            t.join()
    assert len(results) == 100
    assert {r.conversation_id for r in results} == {f"conv_test{150:023d}"}
    assert sum(r.requests for r in results) == api.counts.total()
    assert api.counts["list"] == 2 + 1  # one lookup: rejected filter, live, one scan page


async def test_single_flight_tasks_share_one_lookup(api: FakeApi) -> None:
    history(api, 200)
    async with AsyncElevenLabsClient(API_KEY, transport=httpx.MockTransport(api)) as client:
        resolver = AsyncCallSidResolver(client, cache=NullCache())
        results = await asyncio.gather(*(resolver.resolve(sid_of(99)) for _ in range(100)))
    assert {r.conversation_id for r in results} == {f"conv_test{99:023d}"}
    assert api.counts == {"list": 1, "get": 1}
    assert sorted(r.requests for r in results)[-2:] == [0, 2]


async def test_a_cancelled_waiter_does_not_cancel_the_shared_lookup(api: FakeApi) -> None:
    history(api, 20)
    async with AsyncElevenLabsClient(API_KEY, transport=httpx.MockTransport(api)) as client:
        resolver = AsyncCallSidResolver(client)
        first = asyncio.ensure_future(resolver.resolve(sid_of(3)))
        second = asyncio.ensure_future(resolver.resolve(sid_of(3)))
        await asyncio.sleep(0)
        first.cancel()
        r = await second
    assert r.conversation_id == f"conv_test{3:023d}"
    assert first.cancelled()


def test_a_call_near_the_top_costs_one_read_not_a_window(make: Any, api: FakeApi) -> None:
    history(api, 100)
    api.filter_mode = "reject"
    r = make(concurrency=8).resolve(sid_of(99))  # the newest
    assert r.source == "scan"
    assert api.counts["get"] == 1


def test_the_read_window_opens_by_one_per_completed_read() -> None:
    from callsid_resolver._core._window import ReadWindow

    window = ReadWindow(8)
    rooms = []
    for _ in range(10):
        rooms.append(window.room(0))
        window.answered()
    assert rooms == [1, 2, 3, 4, 5, 6, 7, 8, 8, 8]
    assert window.room(4) == 4
    assert window.room(9) == 0


# -- the scan at scale (issue #16 item 3): window, source order, concurrency limit ----------
def test_the_read_window_halves_once_per_burst_of_429s() -> None:
    from callsid_resolver._core._window import ReadWindow

    window = ReadWindow(16)
    burst = [window.start() for _ in range(4)]
    for _ in range(15):
        window.answered()
    assert window.size == 16
    window.congested(burst[0])
    assert (window.size, window.congestions) == (8, 1)
    window.congested(burst[1])  # started before the halving: the same burst, already counted
    assert (window.size, window.congestions) == (8, 1)
    window.congested(window.start())  # a read started after it: the limit is lower still
    assert (window.size, window.congestions, window.refused_at) == (4, 2, 8)
    for _ in range(4):  # after a halving, one more read per window of answers
        window.answered()
    assert window.size == 5
    for _ in range(20):
        window.congested(window.start())
    assert (window.size, window.room(0), window.room(1)) == (1, 1, 0)  # never below one


def test_the_read_window_dwells_below_the_refused_width() -> None:
    from callsid_resolver._core._window import ReadWindow

    window = ReadWindow(16, width=10, threshold=10)
    window.congested(window.start())  # refused at 10: halved to 5
    answers = 0
    while window.size < 9:
        window.answered()
        answers += 1
    assert answers == 5 + 6 + 7 + 8  # +1 per window of answers
    while window.size < 10:
        window.answered()
        answers += 1
    assert answers - 26 == 8 * 9  # next to the refused width: +1 per eight windows


def test_a_lookup_starts_its_slow_start_below_what_429s_taught() -> None:
    from callsid_resolver._core._ops import ServerCapabilities

    caps = ServerCapabilities()
    window = caps.window(16)
    for _ in range(12):
        window.answered()
    window.congested(window.start())  # refused at 13
    caps.learn_window(window)
    assert caps.read_threshold == 6
    later = caps.window(16)
    for _ in range(5):
        later.answered()
    assert later.size == 6  # slow start up to 6, then one more per window of answers
    for _ in range(5):
        later.answered()
    assert later.size == 6
    later.answered()
    assert later.size == 7
    caps.learn_window(later)
    assert caps.read_threshold == 7  # a lookup without 429s raises it to the width it reached


def scan_history(emulator: Emulator, sources: list[str], ids: dict[int, str] | None = None) -> None:
    """One call per source, `sources[0]` the newest; `ids` gives some depths (0-based) another
    call id; the server-side filter is rejected, so every lookup scans."""
    for depth, source in enumerate(sources):
        conv = make_conversation(len(sources) - depth)
        conv["metadata"]["conversation_initiation_source"] = source
        if ids and depth in ids:
            conv["metadata"]["phone_call"]["call_sid"] = ids[depth]
            conv["conversation_initiation_client_data"]["dynamic_variables"] |= {
                "system__call_sid": ids[depth]
            }
        emulator.add_conversation(conv)
    emulator.filter_mode = "reject"


def resolve_on(emulator: Emulator, mode: str, call_sid: str, **options: Any) -> Any:
    if mode == "sync":
        with ElevenLabsClient(API_KEY, transport=emulator.transport()) as client:
            return CallSidResolver(client, **options).resolve(call_sid)

    async def go() -> Any:
        async with AsyncElevenLabsClient(API_KEY, transport=emulator.transport()) as client:
            return await AsyncCallSidResolver(client, **options).resolve(call_sid)

    return asyncio.run(go())


ALTERNATING = ["twilio", "sip_trunk"] * 150  # three pages of 100, newest first


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_twilio_sid_reads_twilio_calls_first(mode: str) -> None:
    emulator = Emulator()
    scan_history(emulator, ALTERNATING)
    target = make_conversation(len(ALTERNATING) - 250)  # depth 250, a Twilio call
    r = resolve_on(emulator, mode, sid_of(len(ALTERNATING) - 250), concurrency=1)
    assert (r.conversation_id, r.source) == (target["conversation_id"], "scan")
    # Exact at width 1: the 126 Twilio calls down to the target, no SIP call; the filter's
    # 422, the live step's list and three pages of the scan.
    assert emulator.counts == {"get": 126, "list": 5}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_sip_call_id_reads_sip_trunk_calls_first(mode: str) -> None:
    sip = "7b0c2a9e-2f43-4f7e-9d1e-5a0b8c6d4e21"
    emulator = Emulator()
    scan_history(emulator, ALTERNATING, {251: sip})
    r = resolve_on(emulator, mode, sip, concurrency=1)
    assert r.conversation_id == make_conversation(len(ALTERNATING) - 251)["conversation_id"]
    assert emulator.counts == {"get": 126, "list": 5}  # depths 1, 3, ... 251: SIP calls only


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_call_whose_source_does_not_fit_is_read_last_never_skipped(mode: str) -> None:
    emulator = Emulator()
    scan_history(emulator, ALTERNATING)
    # A Twilio SID on a SIP trunk's call (a Twilio Elastic SIP trunk may carry one), depth 101.
    target = make_conversation(len(ALTERNATING) - 101)
    r = resolve_on(emulator, mode, sid_of(len(ALTERNATING) - 101), concurrency=1)
    assert r.conversation_id == target["conversation_id"]
    # Every Twilio call of the walk (150), then the SIP calls newest first down to it (51).
    assert emulator.counts == {"get": 201, "list": 5}
    gets = [rec.path.rsplit("/", 1)[1] for rec in emulator.requests.of("get")]
    assert gets[150:] == [make_conversation(300 - d)["conversation_id"] for d in range(1, 102, 2)]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_read_window_keeps_its_width_across_pages(mode: str) -> None:
    emulator = Emulator()
    scan_history(emulator, ["twilio"] * 300)
    emulator.latency = 0.1  # long enough that a window's reads all arrive before one answers
    arrivals: list[tuple[int, int]] = []  # (list requests so far, reads in flight on arrival)
    handle = emulator.handle

    listed_with: list[int] = []  # reads in flight when each list request was sent
    admission = emulator.admission

    def noting(request: Any) -> Any:
        if "/conversations/" in request.path:
            arrivals.append((emulator.count("list"), emulator.serving))
        return handle(request)

    def admitting(path: str) -> Any:
        if path == "/v1/convai/conversations":
            listed_with.append(emulator.serving)
        return admission(path)

    emulator.admission = admitting  # type: ignore[method-assign]

    emulator.handle = noting  # type: ignore[method-assign]
    oldest = make_conversation(1)
    r = resolve_on(emulator, mode, sid_of(1), concurrency=16)
    assert r.conversation_id == oldest["conversation_id"]
    assert emulator.counts == {"get": 300, "list": 5}  # every call read, each once
    # Page 1 opens by slow start; the reads of pages 2 and 3 start 16 wide at once.
    first_of = {lists: i for i, (lists, _) in reversed(list(enumerate(arrivals)))}
    assert arrivals[first_of[3]][1] == 1
    for page_lists in (4, 5):
        first = first_of[page_lists]
        assert max(n for _, n in arrivals[first : first + 16]) == 16
    # Pages 2 and 3 were listed beside the last reads of the page before, not after them.
    assert listed_with[0:3] == [0, 0, 0]  # the filter, the live step and page 1
    assert min(listed_with[3:]) > 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_next_page_that_could_not_be_listed_ahead_is_listed_again(mode: str) -> None:
    emulator = Emulator()
    scan_history(emulator, ["twilio"] * 300)
    handle = emulator.handle
    lists = 0

    def dropping(request: Any) -> Any:
        nonlocal lists
        if request.path == "/v1/convai/conversations":
            lists += 1
            if 4 <= lists <= 7:  # page 2, listed ahead, and its three retries: dropped
                raise Dropped
        return handle(request)

    emulator.handle = dropping  # type: ignore[method-assign]
    retry = RetryPolicy(backoff_initial=0.001, backoff_max=0.002)
    if mode == "sync":
        with ElevenLabsClient(API_KEY, transport=emulator.transport(), retry=retry) as client:
            r = CallSidResolver(client).resolve(sid_of(150))
    else:

        async def go() -> Any:
            transport = emulator.transport()
            async with AsyncElevenLabsClient(API_KEY, transport=transport, retry=retry) as client:
                return await AsyncCallSidResolver(client).resolve(sid_of(150))

        r = asyncio.run(go())
    assert r.conversation_id == make_conversation(150)["conversation_id"]
    assert lists == 1 + 1 + 1 + 4 + 1  # page 2 listed again, once
    # The dropped attempts never reached the emulator's log, and are counted all the same.
    assert r.requests == emulator.total_requests + 4


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_scan_under_a_concurrency_limit_halves_its_window(mode: str) -> None:
    emulator = Emulator(profile="observed")
    scan_history(emulator, ["twilio"] * 300)
    emulator.latency = 0.01
    emulator.concurrency_limit = 4
    retry = RetryPolicy(max_attempts=10, backoff_initial=0.1, backoff_max=0.4)
    if mode == "sync":
        with ElevenLabsClient(API_KEY, transport=emulator.transport(), retry=retry) as client:
            resolver: Any = CallSidResolver(client)
            r = resolver.resolve(sid_of(1))
    else:

        async def go() -> Any:
            transport = emulator.transport()
            async with AsyncElevenLabsClient(API_KEY, transport=transport, retry=retry) as client:
                resolver = AsyncCallSidResolver(client)
                return resolver, await resolver.resolve(sid_of(1))

        resolver, r = asyncio.run(go())
    assert r.conversation_id == make_conversation(1)["conversation_id"]
    refused = [rec for rec in emulator.requests if rec.status == 429]
    assert refused, "the window never reached the limit"
    assert emulator.peak_serving <= 4
    # Every refused read was retried and answered: 300 reads, each answered 200 once.
    assert sum(rec.status == 200 for rec in emulator.requests.of("get")) == 300
    assert len(refused) <= 0.1 * len(emulator.requests)
    threshold = resolver.capabilities.read_threshold
    assert threshold is not None  # learned for the next lookup
    assert threshold <= 4


# The warm path (issue #16): a hit in the in-process cache is answered before the plan and the
# single flight. It must answer exactly what the plan's cache step would, or let the plan run.


def no_plan(both: Any) -> None:
    def refuse(*_: Any) -> Any:
        raise AssertionError("the plan ran for a warm lookup")

    both.resolver.shared.plan = refuse


class PlanOnlyCache(MemoryCache):
    """A subclass may override `get_many`: the warm path must not bypass it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def __bool__(self) -> bool:
        return True  # empty, yet a cache (`Both` tests `cache or MemoryCache()`)

    def get_many(self, keys: Any) -> list[CachedMapping | None]:
        self.reads += 1
        return super().get_many(keys)


def test_a_warm_lookup_skips_the_plan_and_shares_one_resolution(make: Any, api: FakeApi) -> None:
    history(api, 5)
    both = make()
    both.remember(sid_of(1), "conv_warm1", agent_id=AGENT)
    found = both.resolve(sid_of(2))  # through the plan: the filter
    no_plan(both)
    first = both.resolve(sid_of(1))
    assert both.resolve(sid_of(1)) is first  # frozen, built once per entry
    assert (first.source, first.requests, first.conversation_id, first.agent_id) == (
        "primed",
        0,
        "conv_warm1",
        AGENT,
    )
    again = both.resolve(sid_of(2))
    assert (again.source, again.requests) == ("cache", 0)
    assert again.model_dump(exclude={"source", "requests", "matched_by"}) == found.model_dump(
        exclude={"source", "requests", "matched_by"}
    )
    assert api.counts.total() == 2  # the filter's list and GET only


def test_the_warm_path_checks_hints_as_the_plan_does(make: Any, api: FakeApi) -> None:
    both = make()
    both.remember(sid_of(1), "conv_warm1")
    with pytest.raises(TypeError, match="unexpected keyword argument 'agnet_id'"):
        both.resolve(sid_of(1), agnet_id=AGENT)
    with pytest.raises(InvalidHint):
        both.resolve(sid_of(1), started_after="yesterday")
    # Primed without an agent: it may be any agent's, so it answers a hinted lookup.
    r = both.resolve(sid_of(1), agent_id=AGENT, in_progress=True)
    assert (r.conversation_id, r.source) == ("conv_warm1", "primed")
    assert api.counts.total() == 0


@pytest.mark.parametrize("cache_type", [MemoryCache, PlanOnlyCache])
def test_an_entry_of_another_agent_does_not_answer_an_agent_hint(
    make: Any, api: FakeApi, cache_type: type[MemoryCache]
) -> None:
    api.add(make_conversation(1))  # of AGENT
    both = make(cache=cache_type())
    both.remember(sid_of(1), "conv_elsewhere", agent_id="agent_other")
    assert both.resolve(sid_of(1)).conversation_id == "conv_elsewhere"
    r = both.resolve(sid_of(1), agent_id=AGENT)
    assert (r.conversation_id, r.source) == (f"conv_test{1:023d}", "filter")


def test_an_expired_entry_is_never_served(make: Any, api: FakeApi) -> None:
    api.add(make_conversation(1))
    both = make()
    both.remember(sid_of(1), "conv_old")
    assert both.resolve(sid_of(1)).conversation_id == "conv_old"
    both.now = 24 * 3600.0  # the cache's default TTL
    assert both.resolve(sid_of(1)).conversation_id == f"conv_test{1:023d}"


def test_a_subclass_of_memory_cache_goes_through_the_plan(make: Any, api: FakeApi) -> None:
    cache = PlanOnlyCache()
    both = make(cache=cache)
    both.remember(sid_of(1), "conv_1x")
    assert both.resolve(sid_of(1)).conversation_id == "conv_1x"
    assert cache.reads == 1


def test_the_front_of_a_tiered_cache_answers_warm_lookups(make: Any, api: FakeApi) -> None:
    back = MemoryCache()
    both = make(cache=TieredCache(MemoryCache(), back))
    mapping = CachedMapping(call_sid=sid_of(1), conversation_id="conv_back", agent_id=AGENT)
    back.set_many({Keys().sid(sid_of(1)): mapping})  # written by another process
    assert both.resolve(sid_of(1)).conversation_id == "conv_back"  # the plan fills the front
    no_plan(both)
    assert both.resolve(sid_of(1)).conversation_id == "conv_back"
    assert api.counts.total() == 0


def test_warm_lookups_stay_right_while_other_threads_write_and_forget(api: FakeApi) -> None:
    with ElevenLabsClient(API_KEY, transport=httpx.MockTransport(api)) as client:
        resolver = CallSidResolver(client)
        for i in range(100):
            resolver.remember(sid_of(i), f"conv_w{i}")
        wrong: list[Any] = []

        def read() -> None:
            for _ in range(20):
                for i in range(100):
                    r = resolver.resolve(sid_of(i))
                    if (r.conversation_id, r.requests) != (f"conv_w{i}", 0):
                        wrong.append(r)

        def write(start: int) -> None:
            for i in range(start, 3000, 2):  # grows the tables: the dicts resize under readers
                resolver.remember(sid_of(i), f"conv_w{i}")
                if i % 3 == 0:
                    resolver.forget(sid_of(i))

        threads = [threading.Thread(target=read) for _ in range(3)]
        threads += [threading.Thread(target=write, args=(start,)) for start in (100, 101)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert wrong == []
    assert api.counts.total() == 0


# Options and hints are keyword-only arguments: Python refuses unknown ones, the resolver the
# bad values (issue #17).


def test_options_are_keyword_only_and_their_values_are_checked(make: Any) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'concurency'"):
        make(concurency=4)
    with pytest.raises(ValueError, match="max_scan >= 0"):
        make(max_scan=-1)
    with pytest.raises(ValueError, match="concurrency >= 1"):
        make(concurrency=0)
    with pytest.raises(TypeError, match="positional"):
        CallSidResolver(ElevenLabsClient(API_KEY), MemoryCache())


def test_the_namespace_option_prefixes_every_key_written(make: Any, api: FakeApi) -> None:
    history(api, 5)
    cache = PlanOnlyCache()
    make(cache=cache, namespace="tenant-a").resolve(sid_of(2))
    assert cache.get_many([Keys("tenant-a").sid(sid_of(2))])[0] is not None
    assert cache.get_many([Keys().sid(sid_of(2))])[0] is None


class HeldElsewhere(PlanOnlyCache):
    """A cache with a cross-process lock that another process holds until it has answered."""

    def __init__(self) -> None:
        super().__init__()
        self.claims = 0
        self.released: list[str] = []

    def claim(self, key: str, ttl: float) -> str | None:
        self.claims += 1
        return None

    def release(self, key: str, token: str) -> None:
        self.released.append(token)


def test_a_waiter_polls_with_the_injected_sleep_until_the_holder_answers(
    make: Any, api: FakeApi
) -> None:
    history(api, 5)
    cache = HeldElsewhere()
    naps: list[float] = []
    answer = CachedMapping(call_sid=sid_of(3), conversation_id="conv_from_the_holder")

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 3:  # the holder answers while we wait
            cache.set_many({Keys().sid(sid_of(3)): answer})

    both = make(cache=cache, sleep=nap)
    found = both.resolve(sid_of(3))
    assert (found.conversation_id, found.source, found.requests) == (
        "conv_from_the_holder",
        "cache",
        0,
    )
    assert len(naps) == 3
    assert cache.claims == 3
    assert api.counts.total() == 0
