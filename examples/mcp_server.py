"""An MCP server whose tool hands the live call what your backend queued for it (the pull channel).

Configure the agent's MCP server so the tool's `call_sid` argument comes from the system dynamic
variable, not the LLM: `tool_config_overrides[].input_overrides = {"call_sid": {"source":
"dynamic_variable", "dynamic_variable": "system__call_sid"}}` (api-facts §7). Your backend posts
with `Sender(mailbox=...)` (or `mailbox.post(call_sid, item)`); when the agent calls the tool, it
gets everything waiting, oldest first, and the conversation id for your logs.

    pip install "mcp>=2" "callsid-resolver[redis]"
    ELEVENLABS_API_KEY=... REDIS_URL=redis://localhost:6379/0 python examples/mcp_server.py

The server uses the MCP SDK 2 (`MCPServer`, formerly `FastMCP`); `build_server` is what the tests
drive in-process.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from mcp.server.mcpserver import MCPServer

from callsid_resolver import AsyncCallSidResolver, AsyncElevenLabsClient, CallSidResolverError
from callsid_resolver.live import Mailbox, MemoryMailbox, RedisMailbox

logger = logging.getLogger("mcp_mailbox")


def build_server(resolver: AsyncCallSidResolver, mailbox: Mailbox) -> MCPServer:
    server = MCPServer("call-mailbox", instructions="Fetch updates queued for the current call.")

    @server.tool(structured_output=True)
    async def pending_updates(call_sid: str) -> dict[str, Any]:
        """Updates queued for this call by the backend (filled from system__call_sid)."""
        items = await mailbox.drain(call_sid)
        conversation_id = None
        try:
            # For correlation only: the items are returned whether or not this resolves.
            conversation_id = (await resolver.resolve(call_sid)).conversation_id
        except CallSidResolverError as exc:
            logger.info("call %s not resolved: %s", call_sid, exc)
        return {"conversation_id": conversation_id, "count": len(items), "items": items}

    return server


def main() -> None:  # pragma: no cover - runs a real server
    client = AsyncElevenLabsClient()
    resolver = AsyncCallSidResolver(client)
    mailbox: Mailbox = MemoryMailbox()
    if url := os.environ.get("REDIS_URL"):
        import redis.asyncio

        mailbox = RedisMailbox(redis.asyncio.Redis.from_url(url))
    build_server(resolver, mailbox).run(transport="streamable-http")


if __name__ == "__main__":  # pragma: no cover
    main()
