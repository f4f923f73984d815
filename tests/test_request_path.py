"""A client that builds its own pool sends each request to its transport straight, built without
`build_request` (issue #16: a third of the client's CPU under a burst). What goes on the wire
must not change: every request equals, header for header, the one `build_request` and `send`
would have made, and the client keeps `send`'s refusal after `close`. A caller's own
`httpx.Client`, and a proxy from the environment, still go through `send`."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import httpx
import pytest

from callsid_resolver import (
    ApiError,
    AsyncElevenLabsClient,
    ElevenLabsClient,
    RetryPolicy,
    TransportError,
)
from callsid_resolver.testing import Emulator, synthetic_conversations

from .faults.core.servers import Connection, FaultServer

KEY = "sk_request_path"
# A gateway in front of the API, with user:password in the URL (percent-encoded `@`).
BASE = "https://gate:p%40ss@api.elevenlabs.test"
AFFINITY = "lb_affinity=node-3; Path=/"
FILTERS: dict[str, Any] = {
    "page_size": 7,
    "agent_id": "agent_a b",
    "phone_number_ids": ["phnum_1", "phnum_2"],
    "exclude_statuses": ("failed",),
    "dynamic_variable_filter": "system__call_sid:eq:CA" + "0" * 32,
    "sort_direction": "asc",
}
UNRESOLVABLE = "http://callsid-resolver.invalid"  # RFC 2606: never resolves


class Recording(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """The emulator in-process, keeping every request it was handed; its first answer sets a
    cookie, as a load balancer's affinity cookie would."""

    def __init__(self) -> None:
        history = synthetic_conversations(3, seed=16)
        emulator = Emulator(history, api_key=KEY)
        conversation = history[0]
        self.conversation_id = conversation["conversation_id"]
        self.agent_id = conversation["agent_id"]
        self.inner = emulator.transport()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.cookie(self.inner.handle_request(request))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.cookie(await self.inner.handle_async_request(request))

    def cookie(self, response: httpx.Response) -> httpx.Response:
        if len(self.requests) == 1:
            response.headers["set-cookie"] = AFFINITY
        return response


def wire(request: httpx.Request) -> tuple[str, str, list[tuple[str, str]], Any]:
    """What a server sees of a request, and the timeouts it was sent with."""
    return (
        request.method,
        str(request.url),
        sorted(request.headers.multi_items()),
        request.extensions["timeout"],
    )


def sync_calls(client: ElevenLabsClient, recording: Recording) -> None:
    client.list_conversations(**FILTERS)
    client.get_conversation(recording.conversation_id)
    client.get_signed_url(recording.agent_id, include_conversation_id=True)


async def async_calls(client: AsyncElevenLabsClient, recording: Recording) -> None:
    await client.list_conversations(**FILTERS)
    await client.get_conversation(recording.conversation_id)
    await client.get_signed_url(recording.agent_id, include_conversation_id=True)


def frozen() -> float:
    return 0.0  # both clients shrink their timeouts to the same deadline


def test_sync_requests_are_the_ones_send_would_make() -> None:
    own, given = Recording(), Recording()
    with ElevenLabsClient(KEY, base_url=BASE, transport=own, clock=frozen) as client:
        sync_calls(client, own)
    with (
        httpx.Client(transport=given) as http,
        ElevenLabsClient(KEY, base_url=BASE, http_client=http, clock=frozen) as client,
    ):
        sync_calls(client, given)
    assert len(own.requests) == 3
    assert [wire(r) for r in own.requests] == [wire(r) for r in given.requests]
    query = own.requests[0].url.params
    assert query.get_list("phone_number_ids") == ["phnum_1", "phnum_2"]
    assert own.requests[2].url.params["include_conversation_id"] == "true"
    check_auth_and_cookie(own.requests)


def check_auth_and_cookie(requests: list[httpx.Request]) -> None:
    """Basic auth from the URL's user:password on every request, and the cookie the first
    answer set sent back on the others."""
    basic = "Basic " + base64.b64encode(b"gate:p@ss").decode()
    assert [r.headers.get("authorization") for r in requests] == [basic] * 3
    assert [r.headers.get("cookie") for r in requests] == [None] + ["lb_affinity=node-3"] * 2


async def test_async_requests_are_the_ones_send_would_make() -> None:
    own, given = Recording(), Recording()
    async with AsyncElevenLabsClient(KEY, base_url=BASE, transport=own, clock=frozen) as client:
        await async_calls(client, own)
    async with (
        httpx.AsyncClient(transport=given) as http,
        AsyncElevenLabsClient(KEY, base_url=BASE, http_client=http, clock=frozen) as client,
    ):
        await async_calls(client, given)
    assert len(own.requests) == 3
    assert [wire(r) for r in own.requests] == [wire(r) for r in given.requests]
    check_auth_and_cookie(own.requests)


def test_only_a_callers_client_goes_through_send(caplog: pytest.LogCaptureFixture) -> None:
    """httpx's `send` logs each request it sends; the client that built its own pool skips it,
    a caller's `http_client` does not."""
    recording = Recording()
    with caplog.at_level(logging.INFO, logger="httpx"):
        with ElevenLabsClient(KEY, base_url=BASE, transport=recording) as client:
            client.get_conversation(recording.conversation_id)
        assert not [r for r in caplog.records if r.name == "httpx"]
        with (
            httpx.Client(transport=recording) as http,
            ElevenLabsClient(KEY, base_url=BASE, http_client=http) as client,
        ):
            client.get_conversation(recording.conversation_id)
    sent = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert len(sent) == 1
    assert sent[0].startswith("HTTP Request: GET")


def test_a_closed_sync_client_refuses_to_send() -> None:
    recording = Recording()
    client = ElevenLabsClient(KEY, base_url=BASE, transport=recording)
    client.close()
    with pytest.raises(RuntimeError, match="client has been closed"):
        client.get_conversation(recording.conversation_id)
    assert recording.requests == []


async def test_a_closed_async_client_refuses_to_send() -> None:
    recording = Recording()
    client = AsyncElevenLabsClient(KEY, base_url=BASE, transport=recording)
    await client.aclose()
    with pytest.raises(RuntimeError, match="client has been closed"):
        await client.get_conversation(recording.conversation_id)
    assert recording.requests == []


def get_conversation(flavour: str, base_url: str, **options: Any) -> None:
    """One `get_conversation` through a client of `flavour` that builds its own pool."""
    if flavour == "sync":
        with ElevenLabsClient(KEY, base_url=base_url, **options) as client:
            client.get_conversation("conv_x")
        return

    async def run() -> None:
        async with AsyncElevenLabsClient(KEY, base_url=base_url, **options) as client:
            await client.get_conversation("conv_x")

    asyncio.run(run())


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_proxy_from_the_environment_is_still_used(
    flavour: str, no_proxy_env: pytest.MonkeyPatch
) -> None:
    """The pool the client builds is httpx's own, through the proxy, when the environment names
    one: the request reaches the proxy (a 404 from it), never a name that does not resolve."""

    def refuse(conn: Connection) -> None:
        conn.json(404, {"detail": "no such route on this proxy"})

    with FaultServer(refuse) as proxy:
        no_proxy_env.setenv("HTTP_PROXY", proxy.url)
        with pytest.raises(ApiError) as info:
            get_conversation(flavour, UNRESOLVABLE)
    assert info.value.status_code == 404
    assert proxy.targets == [f"{UNRESOLVABLE}/v1/convai/conversations/conv_x"]


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_without_a_proxy_the_name_is_resolved_directly(
    flavour: str, no_proxy_env: pytest.MonkeyPatch
) -> None:
    """The other half of the test above: the same call with no proxy fails to connect."""
    with pytest.raises(TransportError):
        get_conversation(flavour, UNRESOLVABLE, retry=RetryPolicy(max_attempts=1))
