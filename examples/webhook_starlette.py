"""Receive ElevenLabs post-call webhooks with Starlette (or FastAPI) and prime a resolver.

Every transcription or call-initiation-failure webhook carries a call SID and its conversation
id; remembering them lets later `resolver.resolve(call_sid)` calls answer with zero requests.

Run it (`pip install 'callsid-resolver[testing]'` brings Starlette and uvicorn):

    ELEVENLABS_API_KEY=... ELEVENLABS_WEBHOOK_SECRET=... \\
        uvicorn --factory webhook_starlette:app_from_env --app-dir examples

With FastAPI, register the same endpoint on your app:

    app.add_api_route("/webhooks/elevenlabs", webhook_endpoint(resolver, secret), methods=["POST"])
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from callsid_resolver import AsyncCallSidResolver, AsyncElevenLabsClient, MemoryCache
from callsid_resolver.webhooks import (
    MalformedPayload,
    WebhookError,
    aprime_from_webhook,
    parse_webhook,
)

logger = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]


def webhook_endpoint(resolver: AsyncCallSidResolver, secret: str) -> Endpoint:
    """An endpoint that verifies a delivery, primes `resolver`, and answers at once."""

    async def receive(request: Request) -> Response:
        # The signature covers the body byte for byte: read it raw, never re-serialise parsed JSON.
        body = await request.body()
        try:
            event = parse_webhook(body, request.headers, secret)
        except MalformedPayload as exc:
            # Authentic, just not what we expected. ElevenLabs never retries, so an error status
            # would only count towards auto-disabling the webhook: log it and acknowledge.
            logger.warning("unreadable ElevenLabs webhook: %s", exc)
            return JSONResponse({"received": True, "learned": False})
        except WebhookError as exc:
            # Missing, malformed, stale or wrong signature. The message holds no secret.
            logger.warning("rejected ElevenLabs webhook: %s", exc)
            return JSONResponse({"detail": "invalid signature"}, status_code=401)
        learned = await aprime_from_webhook(resolver, event)
        # Answer now: anything slow (storing transcripts, analytics) belongs in a background task.
        return JSONResponse({"received": True, "learned": learned})

    return receive


def create_app(
    resolver: AsyncCallSidResolver,
    secret: str,
    *,
    path: str = "/webhooks/elevenlabs",
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
) -> Starlette:
    """A Starlette app serving `webhook_endpoint` at `path` (POST only)."""
    routes = [Route(path, webhook_endpoint(resolver, secret), methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan)


def app_from_env() -> Starlette:
    """The app for `uvicorn --factory`: key and secret from the environment."""
    client = AsyncElevenLabsClient()  # reads ELEVENLABS_API_KEY
    # A MemoryCache only helps this process: with several workers, share a RedisCache instead.
    resolver = AsyncCallSidResolver(client, cache=MemoryCache())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    return create_app(resolver, os.environ["ELEVENLABS_WEBHOOK_SECRET"], lifespan=lifespan)
