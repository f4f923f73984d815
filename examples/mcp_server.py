"""The mailbox MCP tool mounted beside a tool of your own, in your own MCP server.

Without code of your own, `callsid-resolver mcp` serves the same tool (docs/mcp.md). The agent's
MCP configuration must fill the tool's `call_sid` and `conversation_id` from `system__call_sid`
and `system__conversation_id` (docs/mcp.md shows the JSON); backends post with
`Sender(mailbox=RedisMailbox(...))`.

    pip install "callsid-resolver[mcp,redis]"
    REDIS_URL=redis://localhost:6379/0 MCP_SECRET=... python examples/mcp_server.py
"""

from __future__ import annotations

import os

from mcp.server.mcpserver import MCPServer

from callsid_resolver import AsyncCallSidResolver, AsyncElevenLabsClient, AsyncRedisCache
from callsid_resolver.live import Mailbox, RedisMailbox
from callsid_resolver.mcp_server import build_mcp_server, secure_app


def build_server(resolver: AsyncCallSidResolver, mailbox: Mailbox) -> MCPServer:
    server = MCPServer("my-company-tools")

    @server.tool()
    async def opening_hours() -> str:
        """Today's opening hours of the service desk."""
        return "8:00-18:00"

    return build_mcp_server(mailbox, resolver=resolver, server=server)


def main() -> None:  # pragma: no cover - runs a real server
    import redis.asyncio
    import uvicorn

    connection = redis.asyncio.Redis.from_url(os.environ["REDIS_URL"])
    resolver = AsyncCallSidResolver(AsyncElevenLabsClient(), cache=AsyncRedisCache(connection))
    server = build_server(resolver, RedisMailbox(connection))
    app = server.streamable_http_app(stateless_http=True, json_response=True)
    uvicorn.run(secure_app(app, os.environ["MCP_SECRET"]), port=8765)


if __name__ == "__main__":  # pragma: no cover
    main()
