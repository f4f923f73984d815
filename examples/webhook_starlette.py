"""Receive ElevenLabs post-call webhooks with Starlette (or FastAPI) and prime a resolver.

Every transcription or call-initiation-failure webhook carries a call SID and its conversation
id; remembering them lets later `resolver.resolve(call_sid)` calls answer with zero requests.
Transcript webhooks may be retried (when retries are on: up to 5 times on 5xx, 429 and 408), so
a delivery seen before is acknowledged and dropped (`MemoryDedupe` here; give several workers
one `AsyncRedisDedupe`).

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

from callsid_resolver import (
    AsyncCallSidResolver,
    AsyncElevenLabsClient,
    MalformedPayload,
    MemoryCache,
    WebhookError,
)
from callsid_resolver.webhooks import (
    AsyncRedisDedupe,
    MemoryDedupe,
    delivery_key,
    mapping_from_webhook,
    parse_webhook,
)

logger = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]


def webhook_endpoint(
    resolver: AsyncCallSidResolver,
    secret: str,
    dedupe: MemoryDedupe | AsyncRedisDedupe | None = None,
) -> Endpoint:
    """An endpoint that verifies a delivery, drops a repeated one, primes `resolver`, and
    answers at once."""
    seen_before = dedupe if dedupe is not None else MemoryDedupe()

    async def seen(key: str) -> bool:
        if isinstance(seen_before, AsyncRedisDedupe):
            return await seen_before.seen(key)
        return seen_before.seen(key)

    async def forget(key: str) -> None:
        if isinstance(seen_before, AsyncRedisDedupe):
            await seen_before.forget(key)
        else:
            seen_before.forget(key)

    async def receive(request: Request) -> Response:
        # The signature covers the body byte for byte: read it raw, never re-serialise parsed JSON.
        body = await request.body()
        try:
            event = parse_webhook(body, request.headers, secret)
        except MalformedPayload as exc:
            # Authentic, just not what we expected. A 4xx is never retried and a 5xx would be
            # retried in vain; either counts towards auto-disabling the webhook: log, acknowledge.
            logger.warning("unreadable ElevenLabs webhook: %s", exc)
            return JSONResponse({"received": True, "learned": False})
        except WebhookError as exc:
            # Missing, malformed, stale or wrong signature. The message holds no secret.
            logger.warning("rejected ElevenLabs webhook: %s", exc)
            return JSONResponse({"detail": "invalid signature"}, status_code=401)
        key = delivery_key(event)
        if await seen(key):
            return JSONResponse({"received": True, "duplicate": True})
        learned = mapping_from_webhook(event)  # None: this kind of event carries no call SID
        if learned is not None:
            try:
                await resolver.remember(*learned)
            except Exception:
                await forget(key)  # we answer 5xx: the retry that follows must be handled
                raise
        # Answer now: anything slow (storing transcripts, analytics) belongs in a background task.
        return JSONResponse({"received": True, "learned": learned is not None})

    return receive


def create_app(
    resolver: AsyncCallSidResolver,
    secret: str,
    *,
    path: str = "/webhooks/elevenlabs",
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
    dedupe: MemoryDedupe | AsyncRedisDedupe | None = None,
) -> Starlette:
    """A Starlette app serving `webhook_endpoint` at `path` (POST only)."""
    routes = [Route(path, webhook_endpoint(resolver, secret, dedupe), methods=["POST"])]
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
