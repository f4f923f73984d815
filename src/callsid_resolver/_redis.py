"""Transitional: the old home of the Redis backends, for modules other branches rewrite
(`__init__`, `_mcp_http`, `live/_router_leases`). The lead deletes this module when they land:
the backends live in `_async/redis_cache`, `_sync/redis_cache`, `_async/tiered_cache`,
`_sync/tiered_cache`, the client builder in `_redis_support`, `millis` in `_core/_keys`."""

from __future__ import annotations

from ._async.redis_cache import AsyncRedisCache
from ._async.tiered_cache import AsyncTieredCache
from ._core._keys import millis as _millis
from ._redis_support import DEFAULT_MAX_CONNECTIONS, async_redis_client
from ._sync.redis_cache import RedisCache
from ._sync.tiered_cache import TieredCache

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "AsyncRedisCache",
    "AsyncTieredCache",
    "RedisCache",
    "TieredCache",
    "_millis",
    "async_redis_client",
]
