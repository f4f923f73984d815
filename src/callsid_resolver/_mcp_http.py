"""The MCP server's HTTP gate: a shared secret in front, undelivered tool results put back.

ElevenLabs sends the secret as a custom header of the MCP server's configuration
(`request_headers`, a workspace secret: docs/mcp.md), `Authorization: Bearer <secret>`. A request
without it is refused before the MCP SDK sees it, so a refused call drains nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SECRET_ENV", "BearerSecret", "Requeue", "ReturnUndelivered", "secure_app"]

SECRET_ENV = "CALLSID_MCP_SECRET"  # noqa: S105 - the variable's name, not a secret
_REFUSAL = json.dumps(
    {
        "error": "unauthorized",
        "message": "this MCP server needs its shared secret: Authorization: Bearer <secret>",
    }
).encode()


class BearerSecret:
    """ASGI middleware: HTTP requests must carry `Authorization: Bearer <secret>` (or the bare
    secret, for a platform that sends a stored secret as the header's whole value).

    The comparison takes constant time; a refusal is a 401 that names no secret.
    """

    def __init__(self, app: ASGIApp, secret: str) -> None:
        if not secret or secret.strip() != secret:
            raise ValueError("the shared secret must be non-empty, without surrounding blanks")
        self.app = app
        self._secret = secret.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._allowed(scope["headers"]):
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer realm="callsid-resolver"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _REFUSAL})

    def _allowed(self, headers: list[tuple[bytes, bytes]]) -> bool:
        values = [value for name, value in headers if name.lower() == b"authorization"]
        if len(values) != 1:
            return False  # absent, or repeated: a proxy and a client disagree, trust neither
        scheme, _, token = values[0].strip().partition(b" ")
        if scheme.lower() == b"bearer":
            return hmac.compare_digest(token.strip(), self._secret)
        return hmac.compare_digest(values[0].strip(), self._secret)


class Requeue(Protocol):
    """Where a result nobody received goes back to (`MailboxTool` is one)."""

    async def requeue(self, call_sid: str, items: list[Any]) -> None:
        """Put `items` back at the head of `call_sid`'s mailbox, in their order."""
        ...


class ReturnUndelivered:
    """ASGI middleware: a tool result whose client hung up before it was sent goes back to the
    mailbox, so a dropped connection loses no item.

    It holds back the JSON answer of a `tools/call` of the mailbox tool (stateless JSON mode,
    as `callsid-resolver mcp` serves) until it is complete, checks that the client is still
    there, and otherwise hands the answer's items to `MailboxTool.requeue`. Streams (SSE) pass
    through untouched. Bytes already written to a socket whose peer vanishes later are beyond
    any server's reach; this covers the common case, an agent that timed out and hung up.
    """

    def __init__(self, app: ASGIApp, tool: Requeue, tool_name: str) -> None:
        self.app = app
        self.tool = tool
        self.tool_name = tool_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = bytearray()
        held: list[Message] = []  # a JSON answer, held until complete; empty: passing through

        async def tap(message: Message) -> None:
            start = message["type"] == "http.response.start"
            if start and message["status"] == 200 and _is_json(message) and self._ours(request):
                held.append(message)
                return
            if not held:
                await send(message)
                return
            held.append(message)
            if not message.get("more_body", False):
                await self._deliver(held, receive, send)

        async def listen() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request.extend(message.get("body", b""))
            return message

        await self.app(scope, listen, tap)

    def _ours(self, request: bytearray) -> bool:
        """Whether the request is a `tools/call` of the mailbox tool (only those are held)."""
        try:
            call = json.loads(request)
        except ValueError:
            return False
        return (
            isinstance(call, dict)
            and call.get("method") == "tools/call"
            and isinstance(call.get("params"), dict)
            and call["params"].get("name") == self.tool_name
        )

    async def _deliver(self, held: list[Message], receive: Receive, send: Send) -> None:
        body = b"".join(m.get("body", b"") for m in held[1:])
        if not await _hung_up(receive):
            await send(held[0])
            await send({"type": "http.response.body", "body": body})
            return
        undelivered = _items_of(body)
        if undelivered is not None:
            call_sid, items = undelivered
            await self.tool.requeue(call_sid, items)
            logging.getLogger(__name__).warning(
                "client hung up before its result: %d item(s) put back for %s", len(items), call_sid
            )


def _is_json(start: Message) -> bool:
    headers = dict(start.get("headers", []))
    return bytes(headers.get(b"content-type", b"")).startswith(b"application/json")


async def _hung_up(receive: Receive) -> bool:
    """True when the client has gone: its request is read, so the next message is a disconnect,
    which servers deliver at once; a client still waiting leaves `receive` pending."""
    try:
        message = await asyncio.wait_for(receive(), timeout=0.001)
    except asyncio.TimeoutError:
        return False
    return bool(message["type"] == "http.disconnect")


def _items_of(response: bytes) -> tuple[str, list[Any]] | None:
    try:
        answer = json.loads(response)
    except ValueError:
        return None
    result = answer.get("result") if isinstance(answer, dict) else None
    content = result.get("structuredContent") if isinstance(result, dict) else None
    if not isinstance(content, dict):
        return None
    sid, items = content.get("call_sid"), content.get("items")
    if not isinstance(sid, str) or not isinstance(items, list) or not items:
        return None
    return sid, items


def secure_app(
    app: ASGIApp,
    secret: str,
    *,
    tool: Requeue | None = None,
    tool_name: str = "pending_updates",
) -> ASGIApp:
    """`app` (e.g. `MCPServer.streamable_http_app(json_response=True)`) behind `BearerSecret`;
    with `tool` (the server's `MailboxTool`), behind `ReturnUndelivered` too."""
    if tool is not None:
        app = ReturnUndelivered(app, tool, tool_name)
    return BearerSecret(app, secret)
