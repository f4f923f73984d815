"""`post_call_transcription_otel` deliveries, and dropping a delivery seen before (in memory and
on the real Redis)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from callsid_resolver import (
    AsyncCallSidResolver,
    AsyncElevenLabsClient,
    CallSidResolver,
    ElevenLabsClient,
    MemoryCache,
)
from callsid_resolver.testing import Emulator, sign_webhook
from callsid_resolver.webhooks import (
    AsyncRedisDedupe,
    MemoryDedupe,
    PostCallTranscriptionOtel,
    RedisDedupe,
    delivery_key,
    mapping_from_webhook,
    parse_webhook,
)

from .conftest import REDIS_URL

SECRET = "wsec_test_0123456789abcdef0123456789abcdef"
AGENT = "agent_fake0example0agent0000000001"
CONV = "conv_fake0otel0inbound000000000007"
SID = "CA0123456789abcdef0123456789abcdef"
EVENT_TIME = 1_786_000_100


def otlp(*span_attributes: tuple[str, Any], resource: tuple[tuple[str, Any], ...] = ()) -> Any:
    """OTLP JSON as the OTel transcript webhook carries it (`resourceSpans`)."""

    def attributes(pairs: tuple[tuple[str, Any], ...]) -> list[dict[str, Any]]:
        kinds = {str: "stringValue", int: "intValue", bool: "boolValue"}
        return [{"key": k, "value": {kinds[type(v)]: v}} for k, v in pairs]

    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "conversation",
        "startTimeUnixNano": "1786000000000000000",
        "endTimeUnixNano": "1786000090000000000",
        "attributes": attributes(
            (("elevenlabs.conversation_id", CONV), ("elevenlabs.agent_id", AGENT), *span_attributes)
        ),
    }
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": attributes((("service.name", "elevenlabs"), *resource))},
                "scopeSpans": [{"scope": {"name": "elevenlabs.agents"}, "spans": [span]}],
            }
        ]
    }


def delivery(traces: Any, *, timestamp: int = EVENT_TIME) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "type": "post_call_transcription_otel",
            "event_timestamp": timestamp,
            "data": {"conversation_id": CONV, "agent_id": AGENT, "otlp_traces": traces},
        }
    ).encode()
    return body, {"ElevenLabs-Signature": sign_webhook(body, SECRET, timestamp=timestamp)}


def test_an_otel_transcription_is_a_typed_event() -> None:
    body, headers = delivery(otlp(("elevenlabs.turn_count", 4)))
    event = parse_webhook(body, headers, SECRET, now=EVENT_TIME)
    assert isinstance(event.data, PostCallTranscriptionOtel)
    assert (event.conversation_id, event.agent_id) == (CONV, AGENT)
    assert event.data.otlp_traces["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] == (
        "conversation"
    )
    assert event.call_sid is None  # no attribute names a call
    assert mapping_from_webhook(event) is None
    assert "resourceSpans" not in repr(event.data)


@pytest.mark.parametrize(
    ("spans", "resource"),
    [
        ((("elevenlabs.phone_call.call_sid", SID),), ()),
        ((), (("elevenlabs.dynamic_variables.system__call_sid", SID),)),
    ],
)
def test_an_otel_transcription_carrying_a_call_sid_primes_the_resolver(
    spans: tuple[tuple[str, Any], ...], resource: tuple[tuple[str, Any], ...]
) -> None:
    body, headers = delivery(otlp(*spans, resource=resource))
    event = parse_webhook(body, headers, SECRET, now=EVENT_TIME)
    assert event.call_sid == SID
    emulator = Emulator()
    client = ElevenLabsClient("test-key", transport=emulator.transport())
    resolver = CallSidResolver(client, cache=MemoryCache())
    learned = mapping_from_webhook(event)
    assert learned is not None
    resolver.remember(*learned)
    resolution = resolver.resolve(SID)
    assert (resolution.conversation_id, resolution.requests) == (CONV, 0)
    assert len(emulator.requests) == 0  # no request: learned from the webhook


def test_odd_otlp_shapes_never_fail_to_parse() -> None:
    for traces in ({}, {"resourceSpans": "x"}, {"resourceSpans": [1, {"scopeSpans": [None]}]}):
        body, headers = delivery(traces)
        event = parse_webhook(body, headers, SECRET, now=EVENT_TIME)
        assert event.call_sid is None


# -- the idempotency key and the in-memory set ---------------------------------------------------
def test_the_delivery_key_is_type_conversation_and_timestamp() -> None:
    body, headers = delivery(otlp())
    event = parse_webhook(body, headers, SECRET, now=EVENT_TIME)
    assert delivery_key(event) == f"post_call_transcription_otel:{CONV}:{EVENT_TIME}"
    later, later_headers = delivery(otlp(), timestamp=EVENT_TIME + 60)
    assert delivery_key(parse_webhook(later, later_headers, SECRET, now=EVENT_TIME + 60)) != (
        delivery_key(event)
    )
    assert delivery_key("already-a-key") == "already-a-key"


def test_memory_dedupe_drops_a_retry_and_lets_a_forgotten_one_through() -> None:
    body, headers = delivery(otlp())
    first = parse_webhook(body, headers, SECRET, now=EVENT_TIME)
    retry = parse_webhook(body, headers, SECRET, now=EVENT_TIME + 30)  # the same delivery again
    dedupe = MemoryDedupe()
    assert dedupe.seen(first) is False
    assert dedupe.seen(retry) is True
    dedupe.forget(retry)  # handling failed: the next retry must be handled
    assert dedupe.seen(retry) is False


def test_memory_dedupe_is_bounded_in_size_and_time() -> None:
    now = [0.0]
    dedupe = MemoryDedupe(max_items=100, ttl=60, clock=lambda: now[0])
    for i in range(1000):
        assert dedupe.seen(f"k{i}") is False
    assert len(dedupe) == 100
    assert dedupe.seen("k999") is True
    now[0] += 61
    assert dedupe.seen("k999") is False
    with pytest.raises(ValueError, match="max_items"):
        MemoryDedupe(max_items=0)
    with pytest.raises(ValueError, match="ttl"):
        MemoryDedupe(ttl=float("nan"))


def test_memory_dedupe_lets_exactly_one_of_concurrent_deliveries_through() -> None:
    dedupe = MemoryDedupe()
    results: list[bool] = []
    start = threading.Barrier(16)

    def deliver() -> None:
        start.wait()
        results.append(dedupe.seen("post_call_transcription:conv_x:1"))

    threads = [threading.Thread(target=deliver) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] + [True] * 15


# -- on the real Redis ---------------------------------------------------------------------------
@pytest.fixture
def redis_client() -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
async def aredis_client() -> AsyncIterator[Any]:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


def test_redis_dedupe_is_shared_and_expires(redis_client: Any, namespace: str) -> None:
    import redis

    body, headers = delivery(otlp())
    event = parse_webhook(body, headers, SECRET, now=EVENT_TIME)
    worker_a = RedisDedupe(redis_client, namespace=namespace, ttl=0.3)
    other = redis.Redis.from_url(REDIS_URL)
    try:
        worker_b = RedisDedupe(other, namespace=namespace, ttl=0.3)
        assert worker_a.seen(event) is False
        assert worker_b.seen(event) is True  # another worker, same Redis: a retry
        assert worker_a.key(event) == f"{namespace}:webhook:{{{delivery_key(event)}}}"  # a tag
        assert redis_client.exists(worker_a.key(event)) == 1
        assert 0 < redis_client.pttl(worker_a.key(event)) <= 300
        worker_b.forget(event)
        assert worker_a.seen(event) is False
        time.sleep(0.4)
        assert worker_b.seen(event) is False  # expired: the key set stays bounded
    finally:
        other.close()


def test_redis_dedupe_keys_live_under_the_namespace_and_name_no_server(
    redis_client: Any,
) -> None:
    dedupe = RedisDedupe(redis_client)
    assert dedupe.key("k") == "callsid-resolver:webhook:{k}"  # `Keys().webhook_delivery`
    assert repr(dedupe) == "<RedisDedupe namespace='callsid-resolver' ttl=86400.0>"
    for ttl in (0, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            RedisDedupe(redis_client, ttl=ttl)
    with pytest.raises(ValueError, match="namespace"):
        RedisDedupe(redis_client, namespace="has space")


async def test_async_redis_dedupe_lets_exactly_one_concurrent_delivery_through(
    aredis_client: Any, namespace: str
) -> None:
    dedupe = AsyncRedisDedupe(aredis_client, namespace=namespace)
    key = f"post_call_transcription:{CONV}:{EVENT_TIME}"
    results = await asyncio.gather(*(dedupe.seen(key) for _ in range(20)))
    assert sorted(results) == [False] + [True] * 19
    await dedupe.forget(key)
    assert await dedupe.seen(key) is False
    assert 0 < await aredis_client.ttl(dedupe.key(key)) <= 24 * 3600


# -- the Starlette example drops retried deliveries ----------------------------------------------
EXAMPLE = Path(__file__).parents[1] / "examples" / "webhook_starlette.py"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    pytest.importorskip("starlette")
    spec = importlib.util.spec_from_file_location("webhook_starlette_dedupe", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CountingResolver(AsyncCallSidResolver):
    """A resolver that counts what it is taught, and can be told to fail once."""

    def __init__(self) -> None:
        super().__init__(AsyncElevenLabsClient("test-key", transport=Emulator().transport()))
        self.taught: list[tuple[str, str]] = []
        self.fail_next = False

    async def remember(
        self, call_sid: str, conversation_id: str, agent_id: str | None = None
    ) -> None:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("the cache is down")
        self.taught.append((call_sid, conversation_id))
        await super().remember(call_sid, conversation_id, agent_id)


async def post_to(app: Any, body: bytes, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.post("/webhooks/elevenlabs", content=body, headers=headers)


def signed_now(traces: Any) -> tuple[bytes, dict[str, str]]:
    now = int(time.time())
    return delivery(traces, timestamp=now)


async def test_the_example_handles_a_delivery_once_however_often_it_comes(
    example: ModuleType,
) -> None:
    resolver = CountingResolver()
    app = example.create_app(resolver, SECRET)
    body, headers = signed_now(otlp(("elevenlabs.phone_call.call_sid", SID)))
    first = await post_to(app, body, headers)
    assert first.json() == {"received": True, "learned": True}
    for _ in range(5):  # the retries ElevenLabs may send
        again = await post_to(app, body, headers)
        assert (again.status_code, again.json()) == (200, {"received": True, "duplicate": True})
    assert resolver.taught == [(SID, CONV)]


async def test_the_example_forgets_a_delivery_it_failed_so_the_retry_is_handled(
    example: ModuleType,
) -> None:
    resolver = CountingResolver()
    resolver.fail_next = True
    app = example.create_app(resolver, SECRET)
    body, headers = signed_now(otlp(("elevenlabs.phone_call.call_sid", SID)))
    failed = await post_to(app, body, headers)
    assert failed.status_code == 500  # ElevenLabs retries a 5xx
    retried = await post_to(app, body, headers)
    assert retried.json() == {"received": True, "learned": True}
    assert resolver.taught == [(SID, CONV)]


async def test_two_workers_sharing_redis_handle_a_delivery_once(
    example: ModuleType, aredis_client: Any, namespace: str
) -> None:
    resolvers = [CountingResolver(), CountingResolver()]
    apps = [
        example.create_app(r, SECRET, dedupe=AsyncRedisDedupe(aredis_client, namespace=namespace))
        for r in resolvers
    ]
    body, headers = signed_now(otlp(("elevenlabs.phone_call.call_sid", SID)))
    answers = await asyncio.gather(*(post_to(app, body, headers) for app in apps * 3))
    assert sorted("duplicate" in a.json() for a in answers) == [False] + [True] * 5
    assert sum(len(r.taught) for r in resolvers) == 1
