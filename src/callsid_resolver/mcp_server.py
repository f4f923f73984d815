"""A ready MCP server: the live call's agent pulls what backends queued for it, and the fleet learns
the call's mapping from the same tool call (extra `callsid-resolver[mcp]`).

```python
from callsid_resolver.mcp_server import build_mcp_server

server = build_mcp_server(RedisMailbox(redis_client), resolver=resolver)  # an MCPServer
```

The tool (`pending_updates` by default) takes `call_sid` and `conversation_id`, which the agent
configuration fills from `system__call_sid` (or `system__call_id`) and `system__conversation_id`
instead of the LLM (`ARGUMENTS`; docs/protocol.md §7). It primes the resolver's cache from them
(`remember_tool_call`) and returns, oldest first, every item waiting in the call's mailbox.
Nothing drained is dropped by this code: a drain removes only what it returns, and it is the
tool's last step before the result goes to the MCP SDK; a refused or failed call drains
nothing, and a result whose client hung up before it was sent goes back to the mailbox
(`ReturnUndelivered`, which `secure_app(..., tool=...)` adds). On Redis, a store that lost its
data since the server first saw it (a restart without persistence, a flush, an eviction) is
reported in the result's `warnings`, so a loss is said, never silent. `callsid-resolver mcp`
serves this over streamable HTTP behind a shared secret (`_mcp_cli`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._exceptions import CallSidResolverError
from ._mcp_http import SECRET_ENV, BearerSecret, ReturnUndelivered, secure_app
from ._mcp_tool import ARGUMENTS, MailboxTool
from .live import Mailbox

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from ._async.resolver import AsyncCallSidResolver

__all__ = [
    "ARGUMENTS",
    "INSTALL_HINT",
    "SECRET_ENV",
    "TOOL_DESCRIPTION",
    "TOOL_NAME",
    "BearerSecret",
    "MailboxTool",
    "ReturnUndelivered",
    "build_mcp_server",
    "secure_app",
    "tool_config_override",
]

INSTALL_HINT = "the MCP server needs the mcp SDK: pip install 'callsid-resolver[mcp]'"
TOOL_NAME = "pending_updates"
TOOL_DESCRIPTION = (
    "Fetch the updates that the company's systems queued for THIS phone call (CRM changes, "
    "order status, instructions from a human supervisor), oldest first. Call it at the start "
    "of the call, whenever the caller asks about something that may have changed, and before "
    "you say you are still waiting for information. Relay what it returns. Both arguments are "
    "filled in by the platform: never invent or change them."
)


def tool_config_override(tool_name: str = TOOL_NAME) -> dict[str, Any]:
    """The agent's `tool_config_overrides[]` entry that fills this tool's arguments from the
    system dynamic variables instead of the LLM (docs/mcp.md shows it in a full MCP config)."""
    return {
        "tool_name": tool_name,
        "input_overrides": {
            argument: {"source": "dynamic_variable", "dynamic_variable": variable}
            for argument, variable in ARGUMENTS.items()
        },
    }


def build_mcp_server(
    mailbox: Mailbox,
    *,
    resolver: AsyncCallSidResolver | None = None,
    server: MCPServer | None = None,
    tool_name: str = TOOL_NAME,
    tool: MailboxTool | None = None,
) -> MCPServer:
    """An MCP server (SDK 2 `MCPServer`) serving the mailbox tool; or add it to your `server`.

    Args:
        mailbox: where backends post for a call (`RedisMailbox` for a fleet).
        resolver: primed from each tool call's ids (`remember_tool_call`); None skips priming.
        server: an `MCPServer` of yours to add the tool to, beside your own tools.
        tool_name: the name the agent's `tool_config_overrides` entry must use.
        tool: a `MailboxTool` you built (and `start()`ed); it replaces `mailbox` and `resolver`.

    Raises:
        ImportError: the `mcp` SDK is missing (`pip install 'callsid-resolver[mcp]'`).
    """
    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    if server is None:
        server = MCPServer(
            "callsid-mailbox",
            instructions="Updates queued for the current call.",
            log_level="WARNING",
        )
    tool = tool or MailboxTool(mailbox, resolver)

    async def pending_updates(call_sid: str, conversation_id: str | None = None) -> dict[str, Any]:
        try:
            return await tool(call_sid, conversation_id)
        except CallSidResolverError as exc:
            # A message for the LLM, which then tells the caller it has no news; nothing drained.
            raise ToolError(f"no updates fetched: {exc}") from exc

    server.add_tool(
        pending_updates, name=tool_name, description=TOOL_DESCRIPTION, structured_output=True
    )
    return server
