# Generated from _async/redis_dedupe.py by scripts/unasync.py: edit that file, not this.
"""`RedisDedupe`: webhook deliveries seen by any worker of a fleet (docs/webhooks.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core._keys import DEFAULT_NAMESPACE, Keys, millis
from .._redis_support import require_redis
from .._webhook_dedupe import DEFAULT_TTL, Delivery, check_ttl, delivery_key

if TYPE_CHECKING:
    import redis

__all__ = ["RedisDedupe"]


class RedisDedupe:
    """Deliveries seen by any worker sharing `client` (a `redis.Redis` you built).

    Keys are `<namespace>:webhook:{<delivery key>}` (the braces: a Redis Cluster hash tag, so
    deliveries spread over a cluster), expiring after `ttl` seconds.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        ttl: float = DEFAULT_TTL,
    ) -> None:
        require_redis("RedisDedupe")
        check_ttl(ttl)
        self.client = client
        self.keys = Keys(namespace)
        self.ttl = ttl

    def __repr__(self) -> str:
        return f"<RedisDedupe namespace={self.keys.namespace!r} ttl={self.ttl}>"

    def key(self, event: Delivery | str) -> str:
        """The Redis key that marks `event` (or a delivery key) as seen."""
        return self.keys.webhook_delivery(delivery_key(event))

    def seen(self, event: Delivery | str) -> bool:
        """True if this delivery was seen before; else record it and return False."""
        created = self.client.set(self.key(event), b"1", nx=True, px=millis(self.ttl))
        return not created

    def forget(self, event: Delivery | str) -> None:
        """Forget a delivery (its handling failed: the retry must go through)."""
        self.client.delete(self.key(event))
