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

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cachetools

from ._core._callsid import validate_call_sid
from ._exceptions import CallSidResolverError, InvalidCallSid
from ._mcp_http import SECRET_ENV, BearerSecret, ReturnUndelivered, secure_app
from ._priming import InvalidConversationId
from .live import Mailbox, RedisMailbox

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
# Tool argument -> the system dynamic variable that must fill it (docs/protocol.md §7). On SIP
# trunk calls `call_sid` may be mapped to `system__call_id` instead: use the id your backend posts
# under.
ARGUMENTS = {"call_sid": "system__call_sid", "conversation_id": "system__conversation_id"}
TOOL_DESCRIPTION = (
    "Fetch the updates that the company's systems queued for THIS phone call (CRM changes, "
    "order status, instructions from a human supervisor), oldest first. Call it at the start "
    "of the call, whenever the caller asks about something that may have changed, and before "
    "you say you are still waiting for information. Relay what it returns. Both arguments are "
    "filled in by the platform: never invent or change them."
)
# Values a platform leaves in a parameter whose variable is unset (a web call has no call SID).
_UNSET = frozenset({"", "null", "none", "undefined"})


def _unset(value: str | None) -> bool:
    return value is None or value.strip().lower() in _UNSET or value.startswith("{{")


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


class MailboxTool:
    """The tool's logic, free of the MCP SDK: prime the mapping, drain the mailbox, report losses.

    `resolver` may be None (no priming). `clock` is injectable for tests.
    """

    def __init__(
        self,
        mailbox: Mailbox,
        resolver: AsyncCallSidResolver | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.mailbox = mailbox
        self.resolver = resolver
        self._epoch = _RedisEpoch(mailbox, clock) if isinstance(mailbox, RedisMailbox) else None

    async def start(self) -> None:
        """Note the Redis data set's epoch now, so a loss before the first tool call is seen too."""
        if self._epoch is not None:
            await self._epoch.check(None)

    async def __call__(self, call_sid: str | None, conversation_id: str | None) -> dict[str, Any]:
        """The tool result: `{call_sid, conversation_id, count, items, warnings}`.

        Raises `InvalidCallSid` for a missing or malformed call SID (nothing drained).
        """
        if _unset(call_sid):
            raise InvalidCallSid(
                "no call SID: not a phone call, or the tool's call_sid argument is not filled "
                f"from {ARGUMENTS['call_sid']}"
            )
        sid = validate_call_sid(call_sid)
        if _unset(conversation_id):
            conversation_id = None  # an unfilled placeholder must never become a mapping
        warnings = await self._prime(sid, conversation_id)
        if self._epoch is not None:
            try:
                warnings += await self._epoch.check(sid)
            except Exception as exc:  # the drain below meets the same fault and reports it
                logging.getLogger(__name__).warning("loss check for %s failed: %r", sid, exc)
                warnings.append("could not check whether the mailbox's Redis lost data")
        # The drain is the tool's last await: nothing of ours runs between taking the items and
        # returning them, so no error or cancellation here can strand them (a drain removes only
        # what it returns).
        items = await self.mailbox.drain(sid)
        return {
            "call_sid": sid,
            "conversation_id": conversation_id,
            "count": len(items),
            "items": items,
            "warnings": warnings,
        }

    async def requeue(self, call_sid: str, items: list[Any]) -> None:
        """Put items a client never received back at the head of the call's mailbox, in order.

        On Redis they go back ahead of anything posted meanwhile (and the mailbox's TTL is
        renewed); another mailbox takes them as new posts, behind such items.
        """
        if not items:
            return
        if isinstance(self.mailbox, RedisMailbox):
            key = self.mailbox.key(call_sid)
            async with self.mailbox.client.pipeline(transaction=True) as pipe:
                pipe.lpush(key, *[json.dumps(item) for item in reversed(items)])
                pipe.pexpire(key, max(int(self.mailbox.ttl * 1000), 1))
                await pipe.execute()
            return
        for item in items:
            await self.mailbox.post(call_sid, item)

    async def _prime(self, sid: str, conversation_id: str | None) -> list[str]:
        if self.resolver is None or conversation_id is None:
            return []
        try:
            await self.resolver.remember_tool_call(sid, conversation_id)
        except InvalidConversationId as exc:
            return [f"mapping not learned: {exc}"]
        except Exception as exc:  # a cache fault must not keep the call from its updates
            logging.getLogger(__name__).warning("priming %s failed: %r", sid, exc)
            return ["mapping not learned: the resolver's cache is unavailable"]
        return []


class _RedisEpoch:
    """Tells a drain whether the mailbox's Redis lost its data since this server first saw it.

    A marker key without TTL holds an epoch. Missing or changed, it means the data set was lost
    (a restart without AOF/RDB, a flush, eviction), so items posted before may be gone: the
    drains of the next `ttl` seconds say so, once per call. A Redis restarted with persistence
    keeps the marker and the items alike, and nothing is reported.
    """

    def __init__(self, mailbox: RedisMailbox, clock: Callable[[], float]) -> None:
        self.client = mailbox.client
        self.key = f"{mailbox.namespace}:mailbox-epoch"  # ':' never occurs in a call SID
        self.window = mailbox.ttl
        self._clock = clock
        self._seen: bytes | str | None = None
        self._lost_at: float | None = None
        self._warned: cachetools.LRUCache[str, bool] = cachetools.LRUCache(maxsize=100_000)

    async def check(self, call_sid: str | None) -> list[str]:
        value = await self.client.get(self.key)
        if value is None:
            fresh = f"{self._clock():.3f}-{uuid.uuid4().hex[:8]}"
            created = await self.client.set(self.key, fresh, nx=True)
            value = fresh.encode() if created else await self.client.get(self.key)
        if self._seen is not None and value != self._seen:
            self._lost_at = self._clock()
            self._warned.clear()
        self._seen = value
        if call_sid is None or self._lost_at is None or call_sid in self._warned:
            return []
        if self._clock() - self._lost_at > self.window:
            return []
        self._warned[call_sid] = True
        return [
            "the mailbox's Redis lost its data (restart without persistence, flush or eviction)"
            f" {self._clock() - self._lost_at:.0f} s ago: updates queued before then may be lost"
        ]


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
