"""Shared fixtures: recorded responses and `FakeApi`, a small scripted stand-in for ElevenLabs
behind `httpx.MockTransport` (the full emulator lives in `callsid_resolver.testing`)."""

from __future__ import annotations

import copy
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio

from callsid_resolver import AsyncElevenLabsClient, ElevenLabsClient, RetryPolicy
from callsid_resolver.testing import DOCUMENTED, EmulatorProfile
from callsid_resolver.testing._view import filter_variables, shown

from .redis_server import RedisServer

RECORDINGS = Path(__file__).parent / "recordings"
API_KEY = "sk_test_0000000000000000000000000000000000000000"
AGENT = "agent_fake0example0agent0000000001"


def recording(name: str) -> Any:
    return json.loads((RECORDINGS / f"{name}.json").read_text())


def make_conversation(
    index: int, *, status: str = "done", agent_id: str = AGENT, phone: bool = True
) -> dict[str, Any]:
    """A conversation shaped like the recorded inbound call, with its own ids and start time."""
    conv = copy.deepcopy(recording("conversation_twilio_inbound"))
    sid = f"CA{index:032x}"
    conv["conversation_id"] = f"conv_test{index:023d}"
    conv["agent_id"] = agent_id
    conv["status"] = status
    conv["metadata"]["start_time_unix_secs"] = 1_786_000_000 + index
    variables = conv["conversation_initiation_client_data"]["dynamic_variables"]
    if phone:
        conv["metadata"]["phone_call"]["call_sid"] = sid
        variables["system__call_sid"] = sid
    else:
        del conv["metadata"]["phone_call"]
        conv["metadata"]["conversation_initiation_source"] = "widget"
        del variables["system__call_sid"]
    return conv


def sid_of(index: int) -> str:
    return f"CA{index:032x}"


class FakeApi:
    """Serves conversations newest first with cursor pages, the filter, faults and counters.

    `profile` decides what GETs, rows and the filter show of a conversation, as in the emulator.
    """

    def __init__(self, conversations: list[dict[str, Any]] | None = None) -> None:
        self.conversations = conversations or []
        self.filter_mode = "support"  # or "reject", "ignore"
        self.profile: EmulatorProfile = DOCUMENTED
        self.faults: list[httpx.Response | Exception] = []
        self.counts: Counter[str] = Counter()
        self.requests: list[httpx.Request] = []

    def add(self, *conversations: dict[str, Any]) -> None:
        self.conversations.extend(conversations)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        kind = "list" if path == "/v1/convai/conversations" else "signed_url"
        if path.startswith("/v1/convai/conversations/"):
            kind = "get"
        self.counts[kind] += 1
        if self.faults:
            fault = self.faults.pop(0)
            if isinstance(fault, Exception):
                raise fault
            return fault
        if request.headers.get("xi-api-key") != API_KEY:
            return httpx.Response(401, json=recording("error_401_invalid_api_key"))
        if kind == "list":
            return self._list(request.url.params)
        if kind == "get":
            return self._get(path.rsplit("/", 1)[1])
        return httpx.Response(200, json=recording("signed_url_response"))

    def _get(self, conversation_id: str) -> httpx.Response:
        for conv in self.conversations:
            if conv["conversation_id"] == conversation_id:
                return httpx.Response(200, json=shown(conv, self.profile))
        body = {"detail": {"status": "conversation_not_found", "message": "Not found"}}
        return httpx.Response(404, json=body, headers={"request-id": "req_404"})

    def _list(self, params: httpx.QueryParams) -> httpx.Response:
        rows = sorted(self.conversations, key=lambda c: -c["metadata"]["start_time_unix_secs"])
        if "agent_id" in params:
            rows = [c for c in rows if c["agent_id"] == params["agent_id"]]
        excluded = params.get_list("exclude_statuses")
        rows = [c for c in rows if c["status"] not in excluded]
        wanted = params.get("dynamic_variable_filter")
        if wanted and self.filter_mode == "reject":
            return httpx.Response(422, json=recording("error_422_validation"))
        if wanted and self.filter_mode == "support":
            name, op, value = wanted.split(":", 2)
            rows = [c for c in rows if _matches(c, self.profile, name, op, value)]
        start = int(params.get("cursor", 0))
        size = int(params.get("page_size", 30))
        chunk = rows[start : start + size]
        more = start + size < len(rows)
        return httpx.Response(
            200,
            json={
                "conversations": [_summary(shown(c, self.profile)) for c in chunk],
                "next_cursor": str(start + size) if more else None,
                "has_more": more,
            },
        )


def _matches(
    conv: dict[str, Any], profile: EmulatorProfile, name: str, op: str, value: str
) -> bool:
    """`eq` and `neq` of the filter; an unset variable compares as "" (`name:neq:` = it is set)."""
    variables = filter_variables(conv, profile)
    if variables is None:  # a live call the profile's filter does not see
        return False
    shown = variables.get(name)
    text = "" if shown is None else str(shown)
    return text != value if op == "neq" else text == value


def _summary(conv: dict[str, Any]) -> dict[str, Any]:
    meta = conv["metadata"]
    return {
        "agent_id": conv["agent_id"],
        "conversation_id": conv["conversation_id"],
        "start_time_unix_secs": meta["start_time_unix_secs"],
        "call_duration_secs": meta["call_duration_secs"],
        "message_count": len(conv["transcript"]),
        "status": conv["status"],
        "call_successful": "unknown",
        "conversation_initiation_source": meta.get("conversation_initiation_source"),
        "direction": (meta.get("phone_call") or {}).get("direction"),
    }


class FakeTime:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def rclient() -> Iterator[redis.Redis]:
    """A client of the loopback Redis (the real one: tests never fake the shared parts)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail("Redis is not running on 127.0.0.1:6379 (bash .ci/run starts it)")
    yield client
    client.close()


@pytest.fixture
async def arclient() -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
def namespace() -> Iterator[str]:
    """A cache namespace of this test's own on the real Redis, its keys removed afterwards."""
    ns = f"test-{uuid.uuid4().hex[:12]}"
    yield ns
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{ns}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy variable from the machine (httpx and the clients read them); set one with the
    returned monkeypatch."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def client(api: FakeApi, fake_time: FakeTime) -> Iterator[ElevenLabsClient]:
    c = ElevenLabsClient(
        API_KEY,
        transport=httpx.MockTransport(api),
        retry=RetryPolicy(),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    yield c
    c.close()


@pytest.fixture
async def aclient(api: FakeApi, fake_time: FakeTime) -> Any:
    c = AsyncElevenLabsClient(
        API_KEY,
        transport=httpx.MockTransport(api),
        retry=RetryPolicy(),
        clock=fake_time.clock,
        sleep=fake_time.asleep,
    )
    yield c
    await c.aclose()


Factory = Callable[..., Any]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A Redis of this test's own on a free port (no persistence), to kill and restart."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def persistent_redis_server() -> Iterator[RedisServer]:
    """Like `redis_server`, with an fsync-always append-only file: a restart keeps the data."""
    with RedisServer(persistent=True) as server:
        yield server
