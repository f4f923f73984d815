"""Plan faults (issue #15 items 2, 6, 7 and the `requests` count of item 15): endless and looping
pagination from a real loopback server, a transient 404 on the verifying GET, and lookups racing
`remember()`/`forget()` on every cache backend."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis
import redis.asyncio

from callsid_resolver import (
    AsyncCallSidResolver,
    AsyncElevenLabsClient,
    AsyncRedisCache,
    CallSidResolver,
    ConversationNotFound,
    ElevenLabsClient,
    MemoryCache,
    RedisCache,
    RetryPolicy,
    TieredCache,
)
from callsid_resolver._core._ops import FilterSupport

from ...conftest import API_KEY, FakeApi, make_conversation, sid_of
from ...redis_server import RedisServer
from .servers import Connection, FaultServer

LIST = "/v1/convai/conversations"


def _resolve(mode: str, url: str, sid: str, **settings: Any) -> Any:
    """One resolve through the sync or the async twin, against a loopback server."""
    if mode == "sync":
        with ElevenLabsClient(API_KEY, base_url=url) as client:
            return CallSidResolver(client, **settings).resolve(sid)

    async def run() -> Any:
        async with AsyncElevenLabsClient(API_KEY, base_url=url) as client:
            return await AsyncCallSidResolver(client, **settings).resolve(sid)

    return asyncio.run(run())


def _split(conn: Connection) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(conn.target)
    return parts.path, parse_qs(parts.query)


def _row(index: int) -> dict[str, Any]:
    conv = make_conversation(index)
    return {
        "agent_id": conv["agent_id"],
        "conversation_id": conv["conversation_id"],
        "start_time_unix_secs": conv["metadata"]["start_time_unix_secs"],
        "status": "done",
    }


def _get(conn: Connection, path: str) -> None:
    index = int(path.rsplit("conv_test", 1)[1])
    conn.json(200, make_conversation(index))


# Item 2: endless pagination.


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_endless_empty_pages_use_up_max_scan(mode: str) -> None:
    def script(conn: Connection) -> None:
        conn.json(200, {"conversations": [], "has_more": True, "next_cursor": uuid.uuid4().hex})

    with FaultServer(script) as server, pytest.raises(ConversationNotFound) as info:
        _resolve(mode, server.url, sid_of(1), max_scan=200)
    searched = info.value.searched
    assert searched is not None
    assert searched.truncated
    assert searched.truncated_by == "max_scan"
    # Two filtered lists, then 200 / 10 empty pages for each of the live step and the scan.
    assert len(server.targets) == searched.pages <= 2 + 2 * 20
    assert "max_scan" in str(info.value)
    assert "started_after" in str(info.value)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_cycling_cursors_end_the_walk(mode: str) -> None:
    following = {None: "A", "A": "B", "B": "A"}
    rows = {None: 1, "A": 2, "B": 3}

    def script(conn: Connection) -> None:
        path, query = _split(conn)
        if path != LIST:
            return _get(conn, path)
        if "dynamic_variable_filter" in query:
            return conn.json(200, {"conversations": [], "has_more": False})
        cursor = query.get("cursor", [None])[0]
        page = [_row(rows[cursor])]
        return conn.json(
            200, {"conversations": page, "has_more": True, "next_cursor": following[cursor]}
        )

    with FaultServer(script) as server, pytest.raises(ConversationNotFound) as info:
        _resolve(mode, server.url, sid_of(9))
    assert info.value.searched is not None
    assert info.value.searched.truncated_by == "cursor_loop"
    assert "cursor" in str(info.value)
    assert len(server.targets) < 20
    with FaultServer(script) as server, ElevenLabsClient(API_KEY, base_url=server.url) as client:
        assert len(list(client.iter_pages())) == 3


async def test_iter_pages_async_stops_at_a_cursor_loop() -> None:
    def script(conn: Connection) -> None:
        cursor = _split(conn)[1].get("cursor", ["A"])[0]
        nxt = "B" if cursor == "A" else "A"
        conn.json(200, {"conversations": [_row(1)], "has_more": True, "next_cursor": nxt})

    with FaultServer(script) as server:
        async with AsyncElevenLabsClient(API_KEY, base_url=server.url) as client:
            pages = [page async for page in client.iter_pages()]
    assert len(pages) == 3  # no cursor (served as A), B, A; then B again: a loop


# Item 6: one transient 404 on the verifying GET.


class Flaky404:
    """The API, answering 404 to the first `times` GETs of one conversation."""

    def __init__(self, api: FakeApi, conversation_id: str, times: int) -> None:
        self.api, self.conversation_id, self.left = api, conversation_id, times
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            if request.url.path.endswith("/" + self.conversation_id) and self.left:
                self.left -= 1
                self.api.requests.append(request)
                body = {"detail": {"status": "conversation_not_found", "message": "Not found"}}
                return httpx.Response(404, json=body)
        return self.api(request)


@pytest.fixture
def history(api: FakeApi) -> FakeApi:
    api.add(*(make_conversation(i) for i in range(40)))
    return api


@pytest.mark.parametrize("times", [1, 2])
def test_a_transient_404_neither_misses_nor_demotes_the_filter(
    history: FakeApi, times: int
) -> None:
    target = f"conv_test{30:023d}"
    with ElevenLabsClient(
        API_KEY, transport=httpx.MockTransport(Flaky404(history, target, times))
    ) as client:
        resolver = CallSidResolver(client, cache=MemoryCache())
        found = resolver.resolve(sid_of(30))
        assert found.conversation_id == target
        assert found.requests == len(history.requests)
        # The filter was not blamed for a 404: an older call is still found by it in 2 requests.
        assert resolver.capabilities.dynamic_variable_filter is not FilterSupport.IGNORED
        history.requests.clear()
        older = resolver.resolve(sid_of(3))
    assert (older.source, older.requests) == ("filter", 2)
    if times == 1:
        assert found.source == "filter"  # asked once more, at once


async def test_a_transient_404_async(history: FakeApi) -> None:
    target = f"conv_test{30:023d}"
    transport = httpx.MockTransport(Flaky404(history, target, 1))
    async with AsyncElevenLabsClient(API_KEY, transport=transport) as client:
        resolver = AsyncCallSidResolver(client)
        found = await resolver.resolve(sid_of(30))
    assert (found.conversation_id, found.source) == (target, "filter")


# Item 15: `Resolution.requests` counts the retries before a 400.


def test_requests_count_the_retries_before_a_bad_request(history: FakeApi) -> None:
    history.faults = [
        httpx.Response(503, json={"detail": "busy"}),
        httpx.Response(422, json={"detail": [{"loc": ["query"], "msg": "no filter"}]}),
    ]
    policy = RetryPolicy(backoff_initial=0.001)
    with ElevenLabsClient(API_KEY, transport=httpx.MockTransport(history), retry=policy) as client:
        found = CallSidResolver(client).resolve(sid_of(30))
    assert found.requests == len(history.requests)


# Item 7: a miss never replaces a mapping written during the lookup, on every backend.


class Gate:
    """The API, holding the first list request until the test has acted."""

    def __init__(self, api: FakeApi) -> None:
        self.api = api
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(10)
        return self.api(request)


@pytest.fixture(params=["memory", "redis", "tiered"])
def cache(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[Any]:
    client = redis.Redis.from_url(redis_server.url)
    made = {
        "memory": lambda: MemoryCache(),
        "redis": lambda: RedisCache(client),
        "tiered": lambda: TieredCache(MemoryCache(), RedisCache(client)),
    }
    yield made[request.param]()
    client.close()


def _race(api: FakeApi, cache: Any, act: Any) -> tuple[CallSidResolver, list[Any]]:
    """A lookup of an unknown SID, with `act(resolver)` run while it is in flight."""
    gate = Gate(api)
    client = ElevenLabsClient(API_KEY, transport=httpx.MockTransport(gate))
    resolver = CallSidResolver(client, cache=cache)
    outcome: list[Any] = []

    def lookup() -> None:
        try:
            outcome.append(resolver.resolve(sid_of(777)))
        except ConversationNotFound as exc:
            outcome.append(exc)

    thread = threading.Thread(target=lookup)
    thread.start()
    assert gate.entered.wait(10)
    act(resolver)
    gate.release.set()
    thread.join(10)
    return resolver, outcome


def test_a_miss_never_replaces_a_mapping_remembered_meanwhile(history: FakeApi, cache: Any) -> None:
    resolver, outcome = _race(history, cache, lambda r: r.remember(sid_of(777), "conv_primed"))
    assert isinstance(outcome[0], ConversationNotFound)
    assert resolver.resolve(sid_of(777)).conversation_id == "conv_primed"


def test_forget_during_a_lookup_is_not_undone(history: FakeApi, cache: Any) -> None:
    resolver, outcome = _race(history, cache, lambda r: r.forget(sid_of(777)))
    assert isinstance(outcome[0], ConversationNotFound)
    history.requests.clear()
    with pytest.raises(ConversationNotFound) as again:
        resolver.resolve(sid_of(777))
    assert not again.value.cached  # searched again: the forgotten SID's miss was not written
    assert history.requests


async def test_async_miss_never_replaces_a_remembered_mapping(
    history: FakeApi, redis_server: RedisServer
) -> None:
    arclient = redis.asyncio.Redis.from_url(redis_server.url)
    entered, release = asyncio.Event(), asyncio.Event()
    serve = history

    async def handler(request: httpx.Request) -> httpx.Response:
        if not entered.is_set():
            entered.set()
            await release.wait()
        return serve(request)

    async with AsyncElevenLabsClient(API_KEY, transport=httpx.MockTransport(handler)) as client:
        resolver = AsyncCallSidResolver(client, cache=AsyncRedisCache(arclient))
        lookup = asyncio.ensure_future(resolver.resolve(sid_of(777)))
        await entered.wait()
        await resolver.remember(sid_of(777), "conv_primed")
        release.set()
        with pytest.raises(ConversationNotFound):
            await lookup
        assert (await resolver.resolve(sid_of(777))).conversation_id == "conv_primed"
    await arclient.aclose()


def test_a_conversation_that_never_reads_leaves_no_cached_miss(history: FakeApi) -> None:
    """The call's conversation is listed but 404s every time (a replica lagging behind the list):
    the search says so, and its miss is not remembered, so the next resolve looks again."""
    target = f"conv_test{30:023d}"
    flaky = Flaky404(history, target, 1000)
    with ElevenLabsClient(API_KEY, transport=httpx.MockTransport(flaky)) as client:
        resolver = CallSidResolver(client, cache=MemoryCache())
        with pytest.raises(ConversationNotFound) as first:
            resolver.resolve(sid_of(30))
        assert first.value.searched is not None
        assert first.value.searched.unverified >= 1
        assert "could not be read (404)" in str(first.value)
        flaky.left = 0
        assert resolver.resolve(sid_of(30)).conversation_id == target
