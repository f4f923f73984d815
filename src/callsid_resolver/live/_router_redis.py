"""The Redis side of `RedisRouter`: its scripts, pipelined script calls and batching outbox.

Every script is run with EVALSHA in a pipeline (one round trip for a batch, run in order); a
script Redis has lost (a restart, a failover, SCRIPT FLUSH) is loaded again and rerun.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    import redis.asyncio
    from redis.commands.core import AsyncScript

__all__ = ["RENEW", "ROUTE", "WITHDRAW", "Outbox", "ScriptCall", "eval_each", "redis_reason"]

T = TypeVar("T")
ScriptCall = tuple[str, list[Any]]  # one key, the script's arguments

# KEYS[1] ownership key; ARGV[1] channel prefix, ARGV[2] message. One round trip, and a worker's
# death (no subscriber) is noticed and cleaned up in the same step that found it.
ROUTE = """
local owner = redis.call('GET', KEYS[1])
if not owner then return false end
local worker = string.match(owner, '^(%S+)')
local receivers = redis.call('PUBLISH', ARGV[1] .. worker, ARGV[2])
if receivers == 0 then redis.call('DEL', KEYS[1]) end
return {owner, receivers}
"""
# Renew our lease, or take the key back if it expired (a paused worker); never take it from
# another worker that registered the call since.
RENEW = """
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
WITHDRAW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


async def eval_each(
    client: redis.asyncio.Redis, script: AsyncScript, calls: list[ScriptCall]
) -> list[Any]:
    """`script` once per (key, args), pipelined: one round trip, run in order, a result or an
    error per call. A script Redis has lost is loaded and rerun. Raises Redis's connection and
    timeout errors; an error of one call (out of memory) is that call's result."""
    from redis.exceptions import NoScriptError

    results = await _evalsha(client, script.sha, calls)
    lost = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
    if lost:
        await client.script_load(script.script)
        rerun = await _evalsha(client, script.sha, [calls[i] for i in lost])
        for i, result in zip(lost, rerun, strict=True):
            results[i] = result
    return results


async def _evalsha(client: redis.asyncio.Redis, sha: str, calls: list[ScriptCall]) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for key, args in calls:
            pipe.evalsha(sha, 1, key, *args)
        return list(await pipe.execute(raise_on_error=False))


def redis_reason(exc: BaseException) -> str:
    """A Redis failure for an error message: the class name only (its text names the server,
    and may echo a command)."""
    return f"Redis is unavailable ({type(exc).__name__})"


class Outbox(Generic[T]):
    """Items put while the previous flush was out go together in the next one, in order."""

    def __init__(self, flush: Callable[[list[T]], Awaitable[None]]) -> None:
        self._flush = flush
        self._items: list[T] = []
        self._ready = asyncio.Event()

    def put(self, item: T) -> None:
        self._items.append(item)
        self._ready.set()

    def take(self) -> list[T]:
        self._ready.clear()
        items, self._items = self._items, []
        return items

    async def drain(self) -> None:
        items = self.take()
        if items:
            await self._flush(items)

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            await self.drain()
