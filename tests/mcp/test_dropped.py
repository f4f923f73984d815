"""A client that hangs up before its tool result is sent loses no item: the items go back."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis.asyncio

from callsid_resolver.live import MemoryMailbox, RedisMailbox
from callsid_resolver.mcp_server import MailboxTool, build_mcp_server, secure_app

from ..conftest import REDIS_URL
from ..redis_server import free_port

pytest.importorskip("mcp")
uvicorn = pytest.importorskip("uvicorn")

SID = "CA" + "5" * 32
SECRET = "dropped-secret"
HEADERS = {
    "Authorization": f"Bearer {SECRET}",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
}
CALL = {
    "jsonrpc": "2.0",
    "id": 7,
    "method": "tools/call",
    "params": {"name": "pending_updates", "arguments": {"call_sid": SID}},
}


class SlowMailbox(MemoryMailbox):
    """Takes the items at once, answers late: the agent's timeout fires in between."""

    delay = 0.0

    async def drain(self, call_sid: str) -> list[Any]:
        items = await super().drain(call_sid)
        await asyncio.sleep(self.delay)
        return items


@pytest.fixture
def served() -> Iterator[tuple[str, SlowMailbox]]:
    mailbox = SlowMailbox()
    tool = MailboxTool(mailbox)
    server = build_mcp_server(mailbox, tool=tool)
    app = server.streamable_http_app(stateless_http=True, json_response=True)
    port = free_port()
    config = uvicorn.Config(secure_app(app, SECRET, tool=tool), port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/mcp", mailbox
    running.should_exit = True
    thread.join(10)


async def test_a_patient_client_gets_the_items(served: tuple[str, SlowMailbox]) -> None:
    url, mailbox = served
    for n in range(3):
        await mailbox.post(SID, n)
    async with httpx.AsyncClient() as http:
        answer = await http.post(url, json=CALL, headers=HEADERS)
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["structuredContent"]["items"] == [0, 1, 2]
    assert await mailbox.size(SID) == 0


async def test_a_client_that_hung_up_loses_nothing(served: tuple[str, SlowMailbox]) -> None:
    url, mailbox = served
    mailbox.delay = 0.5
    for n in range(3):
        await mailbox.post(SID, n)
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(url, json=CALL, headers=HEADERS, timeout=httpx.Timeout(5, read=0.1))
    await mailbox.post(SID, "posted meanwhile")
    deadline = time.monotonic() + 5
    while await mailbox.size(SID) < 4:
        assert time.monotonic() < deadline, "the items never came back"
        await asyncio.sleep(0.05)
    mailbox.delay = 0.0
    assert await mailbox.drain(SID) == ["posted meanwhile", 0, 1, 2]  # memory: behind new posts


async def test_redis_takes_them_back_at_the_head(namespace: str) -> None:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    mailbox = RedisMailbox(client, namespace=namespace)
    for n in range(3):
        await mailbox.post(SID, {"n": n})
    taken = await mailbox.drain(SID)
    await mailbox.post(SID, "posted meanwhile")
    await MailboxTool(mailbox).requeue(SID, taken)
    assert await mailbox.drain(SID) == [{"n": 0}, {"n": 1}, {"n": 2}, "posted meanwhile"]
    assert await client.pttl(mailbox.key(SID)) == -2  # drained: gone
    await MailboxTool(mailbox).requeue(SID, [])
    assert await mailbox.size(SID) == 0
    await client.aclose()
