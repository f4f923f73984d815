"""`AsyncRedisCache`: one cache and one single flight for a fleet (extra `callsid-resolver[redis]`).

It stores `CachedMapping` JSON under the keys the resolver gives it (already namespaced by the
resolver's `namespace`, see `_core._keys.Keys`), with a TTL per entry (`PX`), and offers
`claim`/`release`: a short lock (`SET NX PX`) that lets exactly one process of a fleet look a
SID up while the others wait for its answer in the shared cache. A holder that crashes blocks
nobody past the lock's TTL; only the holder's token frees it (`DELETE_IF_HOLDER`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .._core._keys import millis
from .._core._store import CachedMapping
from .._redis_support import (
    DELETE_IF_HOLDER,
    decode_mapping,
    encode_mapping,
    mget_for,
    require_redis,
)

if TYPE_CHECKING:
    import redis.asyncio
    import redis.asyncio.cluster

__all__ = ["AsyncRedisCache"]


class AsyncRedisCache:
    """The `AsyncResolutionCache` and `AsyncFlightLock` of a fleet, on a `redis.asyncio.Redis`
    client or a `redis.asyncio.cluster.RedisCluster` that you built (connection pool, auth and
    TLS are yours).

    `ttl` is the default lifetime of an entry in seconds; negative entries get the resolver's
    `negative_ttl`. Every process that shares the Redis and the resolver's `namespace` shares
    the mappings and the single flight.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster,
        *,
        ttl: float = 24 * 3600.0,
    ) -> None:
        require_redis("AsyncRedisCache")
        if not ttl > 0:
            raise ValueError("ttl must be positive")
        self.client = client
        self.ttl = ttl
        self._release = client.register_script(DELETE_IF_HOLDER)

    def __repr__(self) -> str:
        return f"<AsyncRedisCache ttl={self.ttl}>"  # never the client: its repr holds the URL

    async def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
        """The cached mappings of `keys`, in order; None where a key has no live entry. One
        `MGET` (one per slot on a cluster)."""
        if not keys:
            return []
        return [decode_mapping(raw) for raw in await mget_for(self.client)(list(keys))]

    async def set_many(
        self,
        items: Mapping[str, CachedMapping],
        ttl: float | None = None,
        *,
        only_if_absent: bool = False,
    ) -> None:
        """Store each mapping of `items` under its key for `ttl` seconds (None: the cache's
        default TTL); with `only_if_absent`, a key holding an entry keeps it (`SET NX`). One
        pipelined round trip."""
        if not items:
            return
        px = millis(self.ttl if ttl is None else ttl)
        async with self.client.pipeline(transaction=False) as pipe:
            for key, value in items.items():
                pipe.set(key, encode_mapping(value), px=px, nx=only_if_absent)
            await pipe.execute()

    async def delete(self, key: str) -> None:
        """Remove `key` (no error when it is absent)."""
        await self.client.delete(key)

    async def claim(self, key: str, ttl: float) -> str | None:
        """Take the lock `key` for `ttl` seconds (`SET NX PX`): the token that releases it, or
        None when another caller holds it."""
        token = uuid.uuid4().hex
        return token if await self.client.set(key, token, nx=True, px=millis(ttl)) else None

    async def release(self, key: str, token: str) -> None:
        """Release `key` if `token` still holds it (one atomic script; a lock that expired and
        was taken since is left to its new holder)."""
        await self._release(keys=[key], args=[token])
