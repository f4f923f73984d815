"""Dropping a webhook delivery seen before (re-exported from `callsid_resolver.webhooks`).

ElevenLabs retries transcript webhooks when the workspace webhook has retries on (up to 5 times,
on 5xx, 429 and 408: docs/protocol.md §12), so the same delivery can arrive twice, for example
when the first answer was slow. A delivery is named by `delivery_key(event)`: the conversation
id, the event type and the event timestamp. `seen(event)` records it and answers whether it was
recorded already, in one atomic step: of two concurrent deliveries exactly one gets False.

```python
if dedupe.seen(event):
    return Response(status_code=200)  # a retry of what we handled: acknowledge, do nothing
try:
    handle(event)
except Exception:
    dedupe.forget(event)  # the retry ElevenLabs sends after our 5xx must be handled
    raise
```

`MemoryDedupe` keeps at most `max_items` keys for `ttl` seconds in this process; `RedisDedupe`
and `AsyncRedisDedupe` share them across a fleet (`SET key 1 NX EX ttl`, one key per delivery, so
Redis expires them: the set stays bounded).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cachetools import TTLCache

if TYPE_CHECKING:
    import redis
    import redis.asyncio

    from .webhooks import WebhookEvent

__all__ = ["AsyncRedisDedupe", "MemoryDedupe", "RedisDedupe", "delivery_key"]

DEFAULT_TTL = 24 * 3600.0  # retries come within minutes; a day leaves room for a slow queue


def delivery_key(event: WebhookEvent | str) -> str:
    """The idempotency key of a delivery: `<type>:<conversation_id>:<event_timestamp>`.

    A string is taken as a key already. A missing part is `-`: an event without a timestamp is
    then one delivery per conversation and type.
    """
    if isinstance(event, str):
        return event
    timestamp = event.event_timestamp if event.event_timestamp is not None else "-"
    return f"{event.type}:{event.conversation_id or '-'}:{timestamp}"


class MemoryDedupe:
    """Deliveries seen by this process: at most `max_items` keys, each kept `ttl` seconds."""

    def __init__(
        self,
        *,
        max_items: int = 100_000,
        ttl: float = DEFAULT_TTL,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_items < 1 or not ttl > 0:
            raise ValueError("max_items must be at least 1 and ttl positive")
        self._keys: TTLCache[str, bool] = TTLCache(maxsize=max_items, ttl=ttl, timer=timer)
        self._lock = threading.Lock()  # sync web frameworks call from several threads

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def seen(self, event: WebhookEvent | str) -> bool:
        """True if this delivery was seen before; else record it and return False."""
        key = delivery_key(event)
        with self._lock:
            if key in self._keys:
                return True
            self._keys[key] = True
            return False

    def forget(self, event: WebhookEvent | str) -> None:
        """Forget a delivery (its handling failed: the retry must go through)."""
        with self._lock:
            self._keys.pop(delivery_key(event), None)


class _RedisKeys:
    def __init__(self, key_prefix: str, ttl: float) -> None:
        if not ttl > 0:
            raise ValueError("ttl must be positive")
        self.prefix = key_prefix
        self.ttl_ms = max(1, int(ttl * 1000))

    def key(self, event: WebhookEvent | str) -> str:
        """The Redis key that marks `event` (or a delivery key) as seen."""
        # In braces: a Redis Cluster hash tag, so deliveries spread over the cluster by key.
        return f"{self.prefix}:{{{delivery_key(event)}}}"


class RedisDedupe(_RedisKeys):
    """Deliveries seen by any worker sharing `client` (a `redis.Redis` you built).

    Keys are `<key_prefix>:{<delivery key>}`, expiring after `ttl` seconds.
    """

    def __init__(
        self, client: redis.Redis, *, key_prefix: str = "callsid:webhook", ttl: float = DEFAULT_TTL
    ) -> None:
        super().__init__(key_prefix, ttl)
        self.client = client

    def seen(self, event: WebhookEvent | str) -> bool:
        """True if this delivery was seen before; else record it and return False."""
        created = self.client.set(self.key(event), b"1", nx=True, px=self.ttl_ms)
        return not created

    def forget(self, event: WebhookEvent | str) -> None:
        """Forget a delivery (its handling failed: the retry must go through)."""
        self.client.delete(self.key(event))


class AsyncRedisDedupe(_RedisKeys):
    """The asyncio twin of `RedisDedupe`, on a `redis.asyncio.Redis` client."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        key_prefix: str = "callsid:webhook",
        ttl: float = DEFAULT_TTL,
    ) -> None:
        super().__init__(key_prefix, ttl)
        self.client = client

    async def seen(self, event: WebhookEvent | str) -> bool:
        """True if this delivery was seen before; else record it and return False."""
        created = await self.client.set(self.key(event), b"1", nx=True, px=self.ttl_ms)
        return not created

    async def forget(self, event: WebhookEvent | str) -> None:
        """Forget a delivery (its handling failed: the retry must go through)."""
        await self.client.delete(self.key(event))
