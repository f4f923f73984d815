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
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["SECRET_ENV", "BearerSecret", "add_arguments", "run", "secure_app"]

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


def secure_app(app: ASGIApp, secret: str) -> ASGIApp:
    """`app` (e.g. `MCPServer.streamable_http_app()`) behind `BearerSecret`."""
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
    import uvicorn

    from ._cache import MemoryCache
    from ._client import AsyncElevenLabsClient
    from ._resolver import AsyncCallSidResolver
    from .live import Mailbox, MemoryMailbox, RedisMailbox
    from .mcp_server import TOOL_NAME, MailboxTool, build_mcp_server

    cache: Any = MemoryCache()
    mailbox: Mailbox = MemoryMailbox()
    names: dict[str, str] = {}
    if args.namespace:
        names["namespace"] = args.namespace
    if args.redis:
        import redis.asyncio

        from ._redis import AsyncRedisCache

        connection = redis.asyncio.Redis.from_url(args.redis)
        cache = AsyncRedisCache(connection)
        prefix = {"key_prefix": args.namespace} if args.namespace else {}
        mailbox = RedisMailbox(connection, **prefix)
    # This server never calls ElevenLabs: the platform hands it both ids, and it only primes the
    # shared cache. A key is used if set, so the same resolver could look calls up.
    key = os.environ.get("ELEVENLABS_API_KEY") or "unused-by-the-mcp-server"
    async with AsyncElevenLabsClient(key) as client:
        resolver = AsyncCallSidResolver(client, cache=cache, **names)  # type: ignore[arg-type]
        tool = MailboxTool(mailbox, resolver)
        await tool.start()
        server = build_mcp_server(mailbox, tool=tool, tool_name=args.tool_name or TOOL_NAME)
        # Stateless JSON: any instance of a fleet behind a load balancer answers any request.
        app = server.streamable_http_app(
            streamable_http_path=args.path, stateless_http=True, json_response=True, host=args.host
        )
        config = uvicorn.Config(
            secure_app(app, secret), host=args.host, port=args.port, log_level="warning"
        )
        print(
            f"MCP server on http://{args.host}:{args.port}{args.path} (Ctrl-C stops it)",
            file=sys.stderr,
            flush=True,
        )
        await uvicorn.Server(config).serve()
