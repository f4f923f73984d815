"""Redis backends (extra `callsid-resolver[redis]`): one cache and one single flight for a fleet.

`RedisCache` (redis-py) and `AsyncRedisCache` (redis.asyncio) store `CachedMapping` JSON under the
resolver's namespaced keys with a TTL per entry, and offer `claim`/`release`: a short lock
(`SET NX PX`) that lets exactly one process of a fleet look a SID up while the others wait for
its answer in the shared cache. A holder that crashes blocks nobody past the lock's TTL.
`TieredCache` puts a `MemoryCache` in front of either, in one line. `async_redis_client(url)`
builds a `redis.asyncio` client the way the library does wherever it makes one itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._cache import AsyncResolutionCache, CachedMapping, ResolutionCache, SharedFlight

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.cluster

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "AsyncRedisCache",
    "AsyncTieredCache",
    "RedisCache",
    "TieredCache",
    "async_redis_client",
]

INSTALL_HINT = "RedisCache needs redis-py: pip install 'callsid-resolver[redis]'"

# Deletes the lock only if it still holds our token: a holder whose lock expired must not free
# the lock a successor has taken since.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


DEFAULT_MAX_CONNECTIONS = 50


def async_redis_client(
    url: str,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    timeout: float = 20.0,
    **connection_kwargs: Any,
) -> redis.asyncio.Redis:
    """A `redis.asyncio.Redis` for `url` as the library builds one (the MCP server's `--redis`).

    Two choices differ from `redis.asyncio.Redis.from_url(url)`:

    * A `BlockingConnectionPool` of `max_connections`: a burst waits up to `timeout` seconds for
      a free connection. redis-py's default pool raises `MaxConnectionsError` instead once 100
      commands are in flight (a burst of 5,000 mailbox posts lost 4,900 that way).
    * No automatic retry (`Retry(NoBackoff(), 0)`): redis-py's default resends a command, or a
      whole pipeline, whose reply was lost, so a script that did run would run again (a
      mailbox item queued twice). A lost reply is reported instead (`MailboxUnavailable`,
      `NoRoute`), and the caller decides. The router is safe either way (owners drop repeated
      message ids), the mailbox is not: set `retry` the same on a client of your own.

    `connection_kwargs` go to each connection (`password=`, `ssl_ca_certs=`, ...). The client is
    yours to close (`await client.aclose()`).
    """
    _require_redis()
    import redis.asyncio
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    connection_kwargs.setdefault("retry", Retry(NoBackoff(), 0))
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout, **connection_kwargs
    )
    return redis.asyncio.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


def _require_redis() -> None:
    try:
        import redis  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised by the no-extras import check
        raise ImportError(INSTALL_HINT) from exc


def _encode(value: CachedMapping) -> bytes:
    return value.model_dump_json(exclude_defaults=True).encode()


def _decode(raw: bytes | str | None) -> CachedMapping | None:
    if raw is None:
        return None
    try:
        return CachedMapping.model_validate_json(raw)
    except ValueError:
        return None  # a foreign or older shape under our key reads as a miss, never as an error


def _mget(client: Any) -> Any:
    """MGET, or on a Redis Cluster client its per-slot split (`mget_nonatomic`): the keys of
    different SIDs hash to different slots, and one MGET across slots is refused (CROSSSLOT)."""
    return getattr(client, "mget_nonatomic", None) or client.mget


def _millis(seconds: float) -> int:
    return max(int(seconds * 1000), 1)


class RedisCache:
    """`ResolutionCache` on a `redis.Redis` (or `redis.cluster.RedisCluster`) client you built
    (connection pool, auth, TLS are yours).

    `ttl` is the default lifetime of an entry in seconds; negative entries get the resolver's
    `negative_ttl`. Every process that shares the Redis and the resolver `namespace` shares the
    mappings and the single flight.
    """

    def __init__(
        self, client: redis.Redis | redis.cluster.RedisCluster, *, ttl: float = 24 * 3600.0
    ) -> None:
        _require_redis()
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.client = client
        self.ttl = ttl
        self._release = client.register_script(_RELEASE)

    def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
        """The cached mappings of `keys`, in order; None where a key has no live entry. One
        `MGET`.
        """
        if not keys:
            return []
        return [_decode(raw) for raw in _mget(self.client)(list(keys))]

    def set_many(
        self,
        items: Mapping[str, CachedMapping],
        ttl: float | None = None,
        *,
        only_if_absent: bool = False,
    ) -> None:
        """Store each mapping of `items` under its key for `ttl` seconds (None: the cache's
        default TTL). One pipelined round trip.
        """
        px = _millis(self.ttl if ttl is None else ttl)
        with self.client.pipeline(transaction=False) as pipe:
            for key, value in items.items():
                pipe.set(key, _encode(value), px=px, nx=only_if_absent)
            pipe.execute()

    def delete(self, key: str) -> None:
        """Remove `key` (no error when it is absent)."""
        self.client.delete(key)

    def claim(self, key: str, ttl: float) -> str | None:
        """Take the lock `key` for `ttl` seconds; the token to release it, or None if held."""
        token = uuid.uuid4().hex
        return token if self.client.set(key, token, nx=True, px=_millis(ttl)) else None

    def release(self, key: str, token: str) -> None:
        """Release `key` if `token` still holds it (one atomic script)."""
        self._release(keys=[key], args=[token])


class AsyncRedisCache:
    """`AsyncResolutionCache` on a `redis.asyncio.Redis` client; see `RedisCache`."""

    def __init__(
        self,
        client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster,
        *,
        ttl: float = 24 * 3600.0,
    ) -> None:
        _require_redis()
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.client = client
        self.ttl = ttl
        self._release = client.register_script(_RELEASE)

    async def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
        """The cached mappings of `keys`, in order; None where a key has no live entry. One
        `MGET`.
        """
        if not keys:
            return []
        return [_decode(raw) for raw in await _mget(self.client)(list(keys))]

    async def set_many(
        self,
        items: Mapping[str, CachedMapping],
        ttl: float | None = None,
        *,
        only_if_absent: bool = False,
    ) -> None:
        """Store each mapping of `items` under its key for `ttl` seconds (None: the cache's
        default TTL). One pipelined round trip.
        """
        px = _millis(self.ttl if ttl is None else ttl)
        async with self.client.pipeline(transaction=False) as pipe:
            for key, value in items.items():
                pipe.set(key, _encode(value), px=px, nx=only_if_absent)
            await pipe.execute()

    async def delete(self, key: str) -> None:
        """Remove `key` (no error when it is absent)."""
        await self.client.delete(key)

    async def claim(self, key: str, ttl: float) -> str | None:
        """Claim `key` for `ttl` seconds with `SET NX`: a token, or None if it is held."""
        token = uuid.uuid4().hex
        return token if await self.client.set(key, token, nx=True, px=_millis(ttl)) else None

    async def release(self, key: str, token: str) -> None:
        """Release `key` if `token` still holds it (one atomic script)."""
        await self._release(keys=[key], args=[token])


class TieredCache:
    """A fast local cache in front of a shared one: reads hit `front` first and fill it from
    `back`; writes and deletes go to both. Locks are the shared cache's."""

    def __init__(self, front: ResolutionCache, back: ResolutionCache) -> None:
        self.front = front
        self.back = back
        if isinstance(back, SharedFlight):
            self.claim, self.release = back.claim, back.release

    def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
        """The cached mappings of `keys`, in order; None where a key has no live entry.

        The local front answers first; keys it misses are read from Redis and kept locally.
        """
        found = self.front.get_many(keys)
        missing = [k for k, v in zip(keys, found, strict=True) if v is None]
        if not missing:
            return found
        merged, keep = _merge(keys, found, missing, self.back.get_many(missing))
        if keep:
            self.front.set_many(keep)
        return merged

    def set_many(
        self,
        items: Mapping[str, CachedMapping],
        ttl: float | None = None,
        *,
        only_if_absent: bool = False,
    ) -> None:
        """Store in Redis, then in the local front cache."""
        if only_if_absent:
            # Only the shared cache can tell whether a key is absent fleet-wide; the front, which
            # keeps no misses (see `_merge`), is left alone.
            self.back.set_many(items, ttl, only_if_absent=True)
            return
        # Front first: with the shared cache down, this process still remembers.
        self.front.set_many(items, ttl)
        self.back.set_many(items, ttl)

    def delete(self, key: str) -> None:
        """Remove `key` from Redis, then from the local front cache."""
        self.front.delete(key)
        self.back.delete(key)


class AsyncTieredCache:
    """`TieredCache` for the async resolver: a blocking in-memory `front`, an async `back`."""

    def __init__(self, front: ResolutionCache, back: AsyncResolutionCache) -> None:
        self.front = front
        self.back = back
        if isinstance(back, SharedFlight):
            self.claim, self.release = back.claim, back.release

    async def get_many(self, keys: Sequence[str]) -> list[CachedMapping | None]:
        """The cached mappings of `keys`, in order; None where a key has no live entry.

        The local front answers first; keys it misses are read from Redis and kept locally.
        """
        found = self.front.get_many(keys)
        missing = [k for k, v in zip(keys, found, strict=True) if v is None]
        if not missing:
            return found
        merged, keep = _merge(keys, found, missing, await self.back.get_many(missing))
        if keep:
            self.front.set_many(keep)
        return merged

    async def set_many(
        self,
        items: Mapping[str, CachedMapping],
        ttl: float | None = None,
        *,
        only_if_absent: bool = False,
    ) -> None:
        """Store in Redis, then in the local front cache."""
        if only_if_absent:  # see `TieredCache.set_many`
            await self.back.set_many(items, ttl, only_if_absent=True)
            return
        self.front.set_many(items, ttl)  # first: see `TieredCache.set_many`
        await self.back.set_many(items, ttl)

    async def delete(self, key: str) -> None:
        """Remove `key` from Redis, then from the local front cache."""
        self.front.delete(key)
        await self.back.delete(key)


def _merge(
    keys: Sequence[str],
    found: list[CachedMapping | None],
    missing: list[str],
    fetched: list[CachedMapping | None],
) -> tuple[list[CachedMapping | None], dict[str, CachedMapping]]:
    """The front's answers completed by the back's, and the back's hits worth copying to the
    front. Misses are not copied: the front would keep them for its own, longer, default TTL."""
    by_key = dict(zip(missing, fetched, strict=True))
    merged = [v if v is not None else by_key[k] for k, v in zip(keys, found, strict=True)]
    keep = {k: v for k, v in by_key.items() if v is not None and v.conversation_id is not None}
    return merged, keep
