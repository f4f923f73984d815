"""What every Redis component of the library shares: the optional import, the errors, the scripts.

redis-py is an extra (`pip install 'callsid-resolver[redis]'`): nothing here imports it at
module level, so the library imports without it and a Redis component says how to get it
(`require_redis`). The rest is what the cache, the webhook dedupe, the router and the mailbox
would otherwise each repeat: the errors a Redis call raises (`redis_errors`), how such an error
is named without leaking the server's address (`redis_reason`), how to tell a cluster client
(`is_cluster`), the multi-key read a cluster accepts (`mget_for`), the compare-and-delete
script that frees a key only for its holder (`DELETE_IF_HOLDER`), and the asyncio client the
library builds for itself (`async_redis_client`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._core._store import CachedMapping

if TYPE_CHECKING:
    import redis.asyncio

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DELETE_IF_HOLDER",
    "INSTALL_HINT",
    "async_redis_client",
    "decode_mapping",
    "encode_mapping",
    "is_cluster",
    "mget_for",
    "redis_errors",
    "redis_reason",
    "require_redis",
]

INSTALL_HINT = "{component} needs redis-py: pip install 'callsid-resolver[redis]'"
DEFAULT_MAX_CONNECTIONS = 50

# KEYS[1] the key, ARGV[1] the holder's token. Deletes the key only if it still holds that token:
# a holder whose key expired must not free the key a successor has taken since (the cache's
# fleet lock, the router's lease).
DELETE_IF_HOLDER = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def require_redis(component: str) -> None:
    """Raise `ImportError` with the install hint when redis-py is missing; `component` names
    what needs it (`"RedisCache"`)."""
    try:
        import redis  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised by the no-extras import check
        raise ImportError(INSTALL_HINT.format(component=component)) from exc


def redis_errors() -> tuple[type[Exception], ...]:
    """The exceptions a Redis call raises: `RedisError`, and `RedisClusterException`, which is
    not one (a cluster that cannot route a key). For `except redis_errors():` once redis-py is
    known to be installed."""
    from redis.exceptions import RedisClusterException, RedisError

    return (RedisError, RedisClusterException)


def redis_reason(exc: BaseException) -> str:
    """A Redis failure for an error message: the class name only (its text names the server,
    and may echo a command with its arguments)."""
    return f"Redis is unavailable ({type(exc).__name__})"


def is_cluster(client: object) -> bool:
    """A Redis Cluster client, sync or asyncio (it routes each command by key slot)."""
    return hasattr(client, "get_node_from_key") and hasattr(client, "get_primaries")


def mget_for(client: Any) -> Callable[[list[str]], Any]:
    """MGET, or on a Redis Cluster client its per-slot split (`mget_nonatomic`): the keys of
    different SIDs hash to different slots, and one MGET across slots is refused (CROSSSLOT).
    The result is awaitable on an asyncio client."""
    found: Callable[[list[str]], Any] = getattr(client, "mget_nonatomic", None) or client.mget
    return found


def encode_mapping(value: CachedMapping) -> bytes:
    """`value` as the JSON a Redis cache stores (defaults left out: smaller, same meaning)."""
    return value.model_dump_json(exclude_defaults=True).encode()


def decode_mapping(raw: bytes | str | None) -> CachedMapping | None:
    """The mapping stored as `raw`; None for no value, and for a foreign or older shape under
    our key, which reads as a miss, never as an error."""
    if raw is None:
        return None
    try:
        return CachedMapping.model_validate_json(raw)
    except ValueError:
        return None


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
    require_redis("async_redis_client")
    import redis.asyncio
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    connection_kwargs.setdefault("retry", Retry(NoBackoff(), 0))
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout, **connection_kwargs
    )
    return redis.asyncio.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it
