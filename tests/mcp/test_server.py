"""The mailbox tool, the shared-secret gate and the CLI's refusals, in-process."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio

from callsid_resolver import (
    AsyncCallSidResolver,
    AsyncElevenLabsClient,
    CachedMapping,
    InvalidCallSid,
    MemoryCache,
)
from callsid_resolver.cli import main
from callsid_resolver.live import MemoryMailbox, RedisMailbox
from callsid_resolver.mcp_server import (
    TOOL_DESCRIPTION,
    BearerSecret,
    MailboxTool,
    build_mcp_server,
)

from ..conftest import API_KEY, REDIS_URL, FakeApi

mcp = pytest.importorskip("mcp")

SID = "CA" + "1" * 32
CONV = "conv_server0test000000000000001"
DOCS = Path(__file__).parents[2] / "docs" / "mcp.md"


class BrokenCache(MemoryCache):
    def set_many(self, items: Mapping[str, CachedMapping], ttl: float | None = None) -> None:
        raise ConnectionError("cache down")


@pytest.fixture
async def resolver(api: FakeApi) -> AsyncIterator[AsyncCallSidResolver]:
    async with AsyncElevenLabsClient(API_KEY, transport=httpx.MockTransport(api)) as client:
        yield AsyncCallSidResolver(client)


async def test_the_tool_drains_in_order_and_primes(
    resolver: AsyncCallSidResolver, api: FakeApi
) -> None:
    mailbox = MemoryMailbox()
    for n in range(3):
        await mailbox.post(SID, {"n": n})
    result = await MailboxTool(mailbox, resolver)(SID, CONV)
    assert result == {
        "call_sid": SID,
        "conversation_id": CONV,
        "count": 3,
        "items": [{"n": 0}, {"n": 1}, {"n": 2}],
        "warnings": [],
    }
    assert (await resolver.resolve(SID)).requests == 0
    assert sum(api.counts.values()) == 0


def test_the_documented_result_has_the_tool_s_shape() -> None:
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", DOCS.read_text(), re.S)]
    (shown,) = [b for b in blocks if "items" in b]
    assert set(shown) == {"call_sid", "conversation_id", "count", "items", "warnings"}
    assert shown["count"] == len(shown["items"])


@pytest.mark.parametrize("call_sid", [None, "", "null", "None", "{{system__call_sid}}", "CA 1"])
async def test_no_call_sid_no_drain(call_sid: str | None) -> None:
    mailbox = MemoryMailbox()
    await mailbox.post(SID, "waiting")
    with pytest.raises(InvalidCallSid):
        await MailboxTool(mailbox)(call_sid, CONV)
    assert await mailbox.size(SID) == 1


async def test_priming_trouble_never_withholds_the_items(api: FakeApi) -> None:
    mailbox = MemoryMailbox()
    async with AsyncElevenLabsClient(API_KEY, transport=httpx.MockTransport(api)) as client:
        broken = AsyncCallSidResolver(client, cache=BrokenCache())
        await mailbox.post(SID, "one")
        result = await MailboxTool(mailbox, broken)(SID, CONV)
        assert result["items"] == ["one"]
        assert result["warnings"] == ["mapping not learned: the resolver's cache is unavailable"]
        await mailbox.post(SID, "two")
        result = await MailboxTool(mailbox, AsyncCallSidResolver(client))(SID, "conv/x")
        assert result["items"] == ["two"]
        (warning,) = result["warnings"]
        assert warning.startswith("mapping not learned: invalid conversation id")
    # No conversation id (an agent configured with call_sid only): items, no priming.
    await mailbox.post(SID, "three")
    assert (await MailboxTool(mailbox, broken)(SID, None))["items"] == ["three"]


@pytest.mark.parametrize("unfilled", ["{{system__conversation_id}}", "null", ""])
async def test_an_unfilled_conversation_id_teaches_nothing(
    resolver: AsyncCallSidResolver, unfilled: str
) -> None:
    mailbox = MemoryMailbox()
    await mailbox.post(SID, "one")
    result = await MailboxTool(mailbox, resolver)(SID, unfilled)
    assert (result["items"], result["conversation_id"]) == (["one"], None)
    assert await resolver.cache.get_many([resolver.settings.keys.sid(SID)]) == [None]


async def test_a_failed_drain_takes_nothing() -> None:
    class Failing(MemoryMailbox):
        async def drain(self, call_sid: str) -> list[Any]:
            raise ConnectionError("mailbox down")

    mailbox = Failing()
    await mailbox.post(SID, "kept")
    with pytest.raises(ConnectionError):
        await MailboxTool(mailbox)(SID, CONV)
    assert await mailbox.size(SID) == 1


async def test_a_redis_that_lost_its_data_is_reported_once_per_call(namespace: str) -> None:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    now = [1000.0]
    mailbox = RedisMailbox(client, namespace=namespace, ttl=60)
    tool = MailboxTool(mailbox, clock=lambda: now[0])
    await tool.start()
    await mailbox.post(SID, "before")
    assert (await tool(SID, CONV))["warnings"] == []
    await client.delete(f"{namespace}:mailbox-epoch")  # what a flush or a bare restart does
    other = "CA" + "2" * 32
    first, again, second = await tool(SID, CONV), await tool(SID, CONV), await tool(other, CONV)
    assert len(first["warnings"]) == 1
    assert "updates queued before then may be lost" in first["warnings"][0]
    assert again["warnings"] == []
    assert len(second["warnings"]) == 1
    now[0] += 61  # past the mailbox TTL nothing posted before the loss could still be waiting
    assert (await tool("CA" + "3" * 32, CONV))["warnings"] == []
    # Another server on the same Redis noticed the loss first and wrote a new epoch: seen too.
    await client.set(f"{namespace}:mailbox-epoch", "someone-else")
    assert len((await tool(SID, CONV))["warnings"]) == 1
    await client.aclose()


async def test_the_mcp_tool_as_the_sdk_serves_it(resolver: AsyncCallSidResolver) -> None:
    mailbox = MemoryMailbox()
    await mailbox.post(SID, "hello")
    server = build_mcp_server(mailbox, resolver=resolver)
    async with mcp.Client(server) as client:
        (tool,) = (await client.list_tools()).tools
        assert (tool.name, tool.description) == ("pending_updates", TOOL_DESCRIPTION)
        assert set(tool.input_schema["properties"]) == {"call_sid", "conversation_id"}
        refused = await client.call_tool("pending_updates", {"call_sid": ""})
        ok = await client.call_tool("pending_updates", {"call_sid": SID, "conversation_id": CONV})
    assert refused.is_error
    assert "no updates fetched: invalid call SID" in refused.content[0].text
    assert ok.structured_content["items"] == ["hello"]


async def test_the_secret_gate() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    gate = BearerSecret(app, "s3cret")
    transport = httpx.ASGITransport(app=gate)
    async with httpx.AsyncClient(transport=transport, base_url="http://mcp") as http:
        for value in ("Bearer s3cret", "bearer s3cret", "s3cret"):
            assert (await http.post("/mcp", headers={"Authorization": value})).status_code == 200
        for headers in (
            {},
            {"Authorization": "Bearer s3cre"},
            {"Authorization": "Bearer s3cret2"},
            {"Authorization": "Basic s3cret"},
            {"X-Secret": "s3cret"},
        ):
            refused = await http.post("/mcp", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert "s3cret" not in refused.text
        twice = [("Authorization", "Bearer s3cret"), ("Authorization", "Bearer s3cret")]
        assert (await http.post("/mcp", headers=twice)).status_code == 401
    assert seen == ["http"] * 3
    for bad in ("", " padded"):
        with pytest.raises(ValueError, match="secret"):
            BearerSecret(app, bad)


def test_the_cli_refuses_to_run_open(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CALLSID_MCP_SECRET", raising=False)
    assert main(["mcp", "--port", "1"]) == 2
    assert "--secret" in capsys.readouterr().err


def test_a_missing_extra_gives_the_install_hint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "mcp.server.mcpserver", None)  # import fails
    assert main(["mcp", "--secret", "x"]) == 5
    assert "pip install 'callsid-resolver[mcp]'" in capsys.readouterr().err
    with pytest.raises(ImportError, match=r"callsid-resolver\[mcp\]"):
        build_mcp_server(MemoryMailbox())


async def test_a_flaky_loss_check_never_withholds_the_items(namespace: str) -> None:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    mailbox = RedisMailbox(client, namespace=namespace)
    tool = MailboxTool(mailbox)
    await mailbox.post(SID, "kept")
    real_get = client.get
    client.get = _failing  # type: ignore[method-assign]  # only the marker is read with GET
    try:
        result = await tool(SID, CONV)
    finally:
        client.get = real_get  # type: ignore[method-assign]
    assert result["items"] == ["kept"]
    assert result["warnings"] == ["could not check whether the mailbox's Redis lost data"]
    await client.aclose()


async def _failing(*args: Any) -> Any:
    raise ConnectionError("redis went away")
