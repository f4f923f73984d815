"""Issue #13, end to end, every piece its own OS process: `callsid-resolver mcp` on a Redis, a
backend posting updates, the real MCP client calling the tool as the agent would, a second
backend resolving the call for free, and the emulator counting what reaches "ElevenLabs"."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from callsid_resolver.testing import EmulatorProcess

from ..redis_server import RedisServer, free_port

mcp = pytest.importorskip("mcp")
if not hasattr(mcp, "Client"):
    pytest.skip("the end-to-end test needs mcp>=2", allow_module_level=True)

from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared._httpx_utils import create_mcp_http_client  # noqa: E402

SECRET = "e2e-shared-secret-0123456789"
NAMESPACE = "e2e"
# The default recording's live inbound call (tests/live/conftest.py).
LIVE_SID = "CAdeadbeef000000000000000000000001"
LIVE_CONVERSATION = "conv_fake0inbound0live00000000001"
DONE_SID = "CAdeadbeef00000000000000000000beef"
UPDATES = ["CRM: ticket #4711 solved", "Refund of 42 EUR issued", "Supervisor: offer a voucher"]

POSTER = """
import asyncio, sys
import redis.asyncio
from callsid_resolver.live import RedisMailbox, Sender

async def main(url, prefix, sid, *texts):
    client = redis.asyncio.Redis.from_url(url)
    sender = Sender(mailbox=RedisMailbox(client, namespace=prefix))
    for text in texts:
        print((await sender.send_contextual_update(text, call_sid=sid)).channel)
    await sender.aclose()
    await client.aclose()

asyncio.run(main(*sys.argv[1:]))
"""

RESOLVER = """
import sys
import redis
from callsid_resolver import CallSidResolver, ElevenLabsClient, RedisCache

url, namespace, base_url, sid = sys.argv[1:]
with ElevenLabsClient("test-key", base_url=base_url) as client:
    cache = RedisCache(redis.Redis.from_url(url))
    print(CallSidResolver(client, cache=cache, namespace=namespace).resolve(sid).model_dump_json())
"""


def python(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@contextlib.contextmanager
def mcp_server(redis_url: str) -> Iterator[str]:
    """`callsid-resolver mcp` in a child process; yields its endpoint URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "callsid_resolver", "mcp", "--port", str(port),
         "--redis", redis_url, "--namespace", NAMESPACE, "--secret", SECRET],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "MCP server on http://" in line, line
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the MCP server did not listen"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


async def call_tool(url: str, arguments: dict[str, Any], secret: str = SECRET) -> Any:
    """One tool call the way the agent makes it: the real MCP client, the secret as a header."""
    headers = {"Authorization": f"Bearer {secret}"}
    async with (
        create_mcp_http_client(headers=headers) as http,
        mcp.Client(streamable_http_client(url, http_client=http)) as client,
    ):
        return await client.call_tool("pending_updates", arguments)


def items_of(result: Any) -> list[str]:
    assert not result.is_error, result.content
    return [item["text"] for item in result.structured_content["items"]]


@pytest.fixture
def emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(recording="default") as running:
        yield running


async def test_the_agent_gets_the_updates_and_the_fleet_learns_the_call(
    redis_server: RedisServer, emulator: EmulatorProcess
) -> None:
    with mcp_server(redis_server.url) as url:
        posted = python(POSTER, redis_server.url, NAMESPACE, LIVE_SID, *UPDATES)
        assert posted.split() == ["mailbox"] * 3

        arguments = {"call_sid": LIVE_SID, "conversation_id": LIVE_CONVERSATION}
        result = await call_tool(url, arguments)
        assert items_of(result) == UPDATES  # in the order posted
        payload = result.structured_content
        assert payload["count"] == 3
        assert payload["conversation_id"] == LIVE_CONVERSATION
        assert payload["warnings"] == []
        assert json.loads(result.content[0].text) == payload  # for clients reading only text
        assert items_of(await call_tool(url, arguments)) == []  # drained once, not twice

    before = emulator.remote.total_requests
    resolve = (RESOLVER, redis_server.url, NAMESPACE, emulator.base_url)
    learned = json.loads(python(*resolve, LIVE_SID))
    assert (learned["conversation_id"], learned["source"], learned["requests"]) == (
        LIVE_CONVERSATION,
        "primed",
        0,
    )
    assert emulator.remote.total_requests == before
    # The control: a call nobody primed costs requests, and the emulator sees them.
    looked_up = json.loads(
        python(RESOLVER, redis_server.url, NAMESPACE, emulator.base_url, DONE_SID)
    )
    assert looked_up["requests"] > 0
    assert emulator.remote.total_requests == before + looked_up["requests"]


async def test_a_wrong_or_missing_secret_is_refused_and_drains_nothing(
    redis_server: RedisServer,
) -> None:
    with mcp_server(redis_server.url) as url:
        python(POSTER, redis_server.url, NAMESPACE, LIVE_SID, *UPDATES)
        arguments = {"call_sid": LIVE_SID, "conversation_id": LIVE_CONVERSATION}
        with pytest.raises(BaseException) as refused:  # noqa: PT011 - the SDK wraps it in a group
            await call_tool(url, arguments, secret="wrong-secret")
        assert "error response" in repr(refused.value)
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        async with httpx.AsyncClient() as http:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": SECRET[:-1]}):
                answer = await http.post(url, json=body, headers=headers)
                assert answer.status_code == 401, headers
                assert answer.json()["error"] == "unauthorized"
                assert SECRET not in answer.text
        assert items_of(await call_tool(url, arguments)) == UPDATES  # all still there
        # Behind a reverse proxy the Host is the public one: the secret, not the Host, decides.
        async with httpx.AsyncClient() as http:
            proxied = {"Authorization": f"Bearer {SECRET}", "Host": "mcp.example.com"}
            proxied["Accept"] = "application/json, text/event-stream"
            answer = await http.post(url, json=body | {"method": "tools/list"}, headers=proxied)
        assert answer.status_code == 200, answer.text


async def test_a_redis_restarted_with_persistence_delivers(
    persistent_redis_server: RedisServer,
) -> None:
    server = persistent_redis_server
    with mcp_server(server.url) as url:
        python(POSTER, server.url, NAMESPACE, LIVE_SID, *UPDATES)
        server.restart()
        arguments = {"call_sid": LIVE_SID, "conversation_id": LIVE_CONVERSATION}
        result = await call_when_back(url, arguments)
        assert items_of(result) == UPDATES
        # No loss to report; the first command after the restart may meet a dropped connection
        # in the priming step, which says so and leaves the updates alone.
        assert all("lost" not in w for w in result.structured_content["warnings"])
        again = await call_tool(url, arguments)
        assert (items_of(again), again.structured_content["warnings"]) == ([], [])


async def test_a_redis_that_lost_its_data_says_so(redis_server: RedisServer) -> None:
    with mcp_server(redis_server.url) as url:
        python(POSTER, redis_server.url, NAMESPACE, LIVE_SID, *UPDATES)
        redis_server.restart()  # no persistence: the three updates are gone
        arguments = {"call_sid": LIVE_SID, "conversation_id": "conv_x"}
        result = await call_when_back(url, arguments)
        assert items_of(result) == []
        (warning,) = [w for w in result.structured_content["warnings"] if "lost" in w]
        assert "lost its data" in warning
        assert "may be lost" in warning
        # Said once per call, not on every later tool call.
        assert (await call_tool(url, arguments)).structured_content["warnings"] == []


async def call_when_back(url: str, arguments: dict[str, Any]) -> Any:
    """The first call after a restart may meet the dead connection: it fails saying so (nothing
    taken), and the next one answers."""
    result = await call_tool(url, arguments)
    if result.is_error:
        assert "no updates fetched" in result.content[0].text or "rror" in result.content[0].text
        result = await call_tool(url, arguments)
    return result
