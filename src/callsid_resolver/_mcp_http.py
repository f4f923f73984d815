"""`callsid-resolver mcp`: the mailbox MCP server over streamable HTTP, behind a shared secret.

ElevenLabs sends the secret as a custom header of the MCP server's configuration
(`request_headers`, a workspace secret: docs/mcp.md), `Authorization: Bearer <secret>`. A request
without it is refused before the MCP SDK sees it, so a refused call drains nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from .mcp_server import MailboxTool

__all__ = [
    "SECRET_ENV",
    "BearerSecret",
    "ReturnUndelivered",
    "add_arguments",
    "run",
    "secure_app",
]

SECRET_ENV = "CALLSID_MCP_SECRET"  # noqa: S105 - the variable's name, not a secret
EXIT_USAGE, EXIT_MISSING_EXTRA = 2, 5
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


class ReturnUndelivered:
    """ASGI middleware: a tool result whose client hung up before it was sent goes back to the
    mailbox, so a dropped connection loses no item.

    It holds back the JSON answer of a `tools/call` of the mailbox tool (stateless JSON mode,
    as `callsid-resolver mcp` serves) until it is complete, checks that the client is still
    there, and otherwise hands the answer's items to `MailboxTool.requeue`. Streams (SSE) pass
    through untouched. Bytes already written to a socket whose peer vanishes later are beyond
    any server's reach; this covers the common case, an agent that timed out and hung up.
    """

    def __init__(self, app: ASGIApp, tool: MailboxTool, tool_name: str) -> None:
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
    tool: MailboxTool | None = None,
    tool_name: str = "pending_updates",
) -> ASGIApp:
    """`app` (e.g. `MCPServer.streamable_http_app(json_response=True)`) behind `BearerSecret`;
    with `tool` (the server's `MailboxTool`), behind `ReturnUndelivered` too."""
    if tool is not None:
        app = ReturnUndelivered(app, tool, tool_name)
    return BearerSecret(app, secret)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `callsid-resolver mcp` (the CLI calls `run(args)` with them)."""
    parser.add_argument("--host", default="127.0.0.1", help="interface (default loopback)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    parser.add_argument("--path", default="/mcp", help="the endpoint's path (default /mcp)")
    parser.add_argument(
        "--redis", metavar="URL", help="Redis shared with the backends (default: in memory)"
    )
    parser.add_argument(
        "--namespace",
        help="prefix of the mailbox keys and the resolver's cache keys on Redis "
        "(default: the library's, 'callsid' and 'callsid-resolver')",
    )
    parser.add_argument(
        "--secret", help=f"the shared secret callers send as a Bearer token; or ${SECRET_ENV}"
    )
    parser.add_argument("--tool-name", default=None, help="name of the tool (pending_updates)")


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 2 without a secret, 5 without the `mcp` extra."""
    secret = args.secret or os.environ.get(SECRET_ENV)
    if not secret:
        print(
            f"error: no shared secret: pass --secret or set {SECRET_ENV}; the server refuses to "
            "run open, since anyone reaching it could drain a call's updates",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        import mcp.server.mcpserver  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        from .mcp_server import INSTALL_HINT

        print(f"error: {INSTALL_HINT}", file=sys.stderr)
        return EXIT_MISSING_EXTRA
    if args.redis:
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:
            print(
                "error: --redis needs redis-py: pip install 'callsid-resolver[redis]'",
                file=sys.stderr,
            )
            return EXIT_MISSING_EXTRA
    asyncio.run(_serve(args, secret))
    return 0


async def _serve(args: argparse.Namespace, secret: str) -> None:
    from ._cache import MemoryCache
    from .live import Mailbox, MemoryMailbox, RedisMailbox

    cache: Any = MemoryCache()
    mailbox: Mailbox = MemoryMailbox()
    names: dict[str, str] = {}
    connection: Any = None
    if args.namespace:
        names["namespace"] = args.namespace
    if args.redis:
        from ._redis import AsyncRedisCache, async_redis_client

        connection = async_redis_client(args.redis)  # a blocking pool, no silent resends
        cache = AsyncRedisCache(connection)
        prefix = {"key_prefix": args.namespace} if args.namespace else {}
        mailbox = RedisMailbox(connection, **prefix)
    try:
        await _serve_with(args, secret, mailbox, cache, names)
    finally:
        if connection is not None:
            await connection.aclose()


async def _serve_with(
    args: argparse.Namespace, secret: str, mailbox: Any, cache: Any, names: dict[str, str]
) -> None:
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    from ._async.resolver import AsyncCallSidResolver
    from ._client import AsyncElevenLabsClient
    from ._core._keys import DEFAULT_NAMESPACE
    from .mcp_server import TOOL_NAME, MailboxTool, build_mcp_server

    # This server never calls ElevenLabs: the platform hands it both ids, and it only primes the
    # shared cache. A key is used if set, so the same resolver could look calls up.
    key = os.environ.get("ELEVENLABS_API_KEY") or "unused-by-the-mcp-server"
    async with AsyncElevenLabsClient(key) as client:
        namespace = names.get("namespace", DEFAULT_NAMESPACE)
        resolver = AsyncCallSidResolver(client, cache=cache, namespace=namespace)
        tool = MailboxTool(mailbox, resolver)
        await tool.start()
        server = build_mcp_server(mailbox, tool=tool, tool_name=args.tool_name or TOOL_NAME)
        # Stateless JSON: any instance of a fleet behind a load balancer answers any request.
        # The SDK's Host check (against DNS rebinding) would refuse a reverse proxy's Host in
        # front of a loopback server; the shared secret, which no rebinding page can know, is
        # the gate instead.
        app = server.streamable_http_app(
            streamable_http_path=args.path,
            stateless_http=True,
            json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        gated = secure_app(app, secret, tool=tool, tool_name=args.tool_name or TOOL_NAME)
        config = uvicorn.Config(gated, host=args.host, port=args.port, log_level="warning")
        print(
            f"MCP server on http://{args.host}:{args.port}{args.path} (Ctrl-C stops it)",
            file=sys.stderr,
            flush=True,
        )
        await uvicorn.Server(config).serve()
