"""`callsid-resolver mcp`: the mailbox MCP server over streamable HTTP, behind a shared secret
(`_mcp_http`), with the cache and mailbox on Redis when a fleet shares them."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from ._mcp_http import SECRET_ENV, secure_app

__all__ = ["add_arguments", "run"]

EXIT_USAGE, EXIT_MISSING_EXTRA = 2, 5


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
        "(default: the library's, 'callsid-resolver')",
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
    from ._core._keys import DEFAULT_NAMESPACE
    from .live import Mailbox, MemoryMailbox, RedisMailbox

    namespace = args.namespace or DEFAULT_NAMESPACE  # the mailbox's keys and the cache's
    cache: Any = MemoryCache()
    mailbox: Mailbox = MemoryMailbox()
    connection: Any = None
    if args.redis:
        from ._async.redis_cache import AsyncRedisCache
        from ._redis_support import async_redis_client

        connection = async_redis_client(args.redis)  # a blocking pool, no silent resends
        cache = AsyncRedisCache(connection)
        mailbox = RedisMailbox(connection, namespace=namespace)
    try:
        await _serve_with(args, secret, mailbox, cache, namespace)
    finally:
        if connection is not None:
            await connection.aclose()


async def _serve_with(
    args: argparse.Namespace, secret: str, mailbox: Any, cache: Any, namespace: str
) -> None:
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    from ._async.client import AsyncElevenLabsClient
    from ._async.resolver import AsyncCallSidResolver
    from .mcp_server import TOOL_NAME, MailboxTool, build_mcp_server

    # This server never calls ElevenLabs: the platform hands it both ids, and it only primes the
    # shared cache. A key is used if set, so the same resolver could look calls up.
    key = os.environ.get("ELEVENLABS_API_KEY") or "unused-by-the-mcp-server"
    async with AsyncElevenLabsClient(key) as client:
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
