"""The MCP example, driven by the MCP SDK's own client in-process, against the emulator."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from callsid_resolver import AsyncCallSidResolver
from callsid_resolver.live import MemoryMailbox, Sender
from callsid_resolver.testing import Emulator

from .conftest import LIVE_CONVERSATION, LIVE_SID

mcp = pytest.importorskip("mcp")
if not hasattr(mcp, "Client"):  # mcp 1.x has neither `Client` nor `MCPServer`
    pytest.skip("the example needs mcp>=2", allow_module_level=True)
EXAMPLE = Path(__file__).parents[2] / "examples" / "mcp_server.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mcp_server_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_tool_returns_what_the_mailbox_holds(
    resolver: AsyncCallSidResolver, emulator: Emulator
) -> None:
    mailbox = MemoryMailbox()
    server = load_example().build_server(resolver, mailbox)
    # The backend has no session and no monitor for this call: the mailbox takes it.
    sender = Sender(mailbox=mailbox)
    receipt = await sender.send_contextual_update("CRM: ticket #4711 is solved", call_sid=LIVE_SID)
    assert receipt.channel == "mailbox"
    await sender.send_user_message("Tell the caller the refund is on its way", call_sid=LIVE_SID)

    arguments = {"call_sid": LIVE_SID, "conversation_id": LIVE_CONVERSATION}
    async with mcp.Client(server) as client:
        tools = await client.list_tools()
        assert sorted(t.name for t in tools.tools) == ["opening_hours", "pending_updates"]
        result = await client.call_tool("pending_updates", arguments)
        again = await client.call_tool("pending_updates", arguments)
    await sender.aclose()

    assert not result.is_error
    payload = result.structured_content
    assert payload == {
        "call_sid": LIVE_SID,
        "conversation_id": LIVE_CONVERSATION,
        "count": 2,
        "items": [
            {"type": "contextual_update", "text": "CRM: ticket #4711 is solved"},
            {"type": "user_message", "text": "Tell the caller the refund is on its way"},
        ],
        "warnings": [],
    }
    # The text content carries the same JSON for clients that read only text.
    assert json.loads(result.content[0].text) == payload
    assert again.structured_content["items"] == []
    # The tool call taught the resolver the mapping: resolving costs nothing.
    before = emulator.total_requests
    resolution = await resolver.resolve(LIVE_SID)
    assert (resolution.conversation_id, resolution.requests) == (LIVE_CONVERSATION, 0)
    assert emulator.total_requests == before
