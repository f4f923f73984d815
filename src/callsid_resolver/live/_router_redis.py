"""The Redis side of `RedisRouter`: pipelined script calls and the batching outbox (the scripts
themselves are in `_router_messages`).

Every script is run with EVALSHA in a pipeline (one round trip for a batch, run in order); a
script Redis has lost (a restart, a failover, SCRIPT FLUSH) is loaded again and rerun.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._redis_support import is_cluster
from ._router_messages import parse_owner

if TYPE_CHECKING:
    import redis.asyncio
    from redis.commands.core import AsyncScript

__all__ = [
    "Outbox",
    "ScriptCall",
    "Wire",
    "eval_each",
]

T = TypeVar("T")
ScriptCall = tuple[str, list[Any]]  # one key, the script's arguments


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
    if is_cluster(client):  # a cluster pipeline refuses scripts: one call per key, together
        evals = (client.evalsha(sha, 1, key, *args) for key, args in calls)
        return list(await asyncio.gather(*evals, return_exceptions=True))
    async with client.pipeline(transaction=False) as pipe:
        for key, args in calls:
            pipe.evalsha(sha, 1, key, *args)
        return list(await pipe.execute(raise_on_error=False))


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


class Wire:
    """How the router talks to its Redis: one server, or a Redis Cluster.

    On one server a send is one script (GET the owner, PUBLISH, DEL a dead owner's key), and a
    worker's channel is plain pub/sub. On a cluster a script may touch one slot only and PUBLISH
    counts the subscribers of the node that ran it, so a send is GET, then SPUBLISH (sharded
    pub/sub, Redis >= 7: the count is that of the node holding the channel's slot, where the
    owner subscribed), then a WITHDRAW of a dead owner's key: three pipelined steps, still one
    per batch of runs, never one per message.
    """

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self.cluster = is_cluster(client)

    async def load(self, scripts: list[AsyncScript]) -> None:
        """Load the scripts (EVALSHA from here on); on a cluster, on every primary."""
        if self.cluster:
            for script in scripts:
                await self.client.script_load(script.script)
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for script in scripts:
                pipe.script_load(script.script)
            await pipe.execute()

    async def subscribe(self, pubsub: Any, channel: str) -> None:
        if self.cluster:
            await pubsub.ssubscribe(channel)
        else:
            await pubsub.subscribe(channel)

    async def messages(self, pubsub: Any) -> AsyncIterator[bytes | str]:
        """The data of each message on the subscribed channel, until unsubscribed."""
        if not self.cluster:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    yield message["data"]
            return
        while True:
            message = await pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None and message.get("type") == "smessage":
                yield message["data"]

    async def publish(self, messages: list[tuple[str, str]]) -> None:
        """Publish each (channel, message), in one pipeline."""
        async with self.client.pipeline(transaction=False) as pipe:
            for channel, message in messages:
                if self.cluster:
                    pipe.execute_command("SPUBLISH", channel, message)
                else:
                    pipe.publish(channel, message)
            await pipe.execute()

    async def route(
        self,
        route: AsyncScript,
        withdraw: AsyncScript,
        channel_prefix: str,
        calls: list[ScriptCall],
    ) -> list[Any]:
        """For each (ownership key, [message]): None when nobody owns the call, else (owner,
        receivers); a dead owner's key (0 receivers) is deleted. Errors per call, as results."""
        if not self.cluster:
            args = [(key, [channel_prefix, message]) for key, (message,) in calls]
            return await eval_each(self.client, route, args)
        async with self.client.pipeline(transaction=False) as pipe:
            for key, _ in calls:
                pipe.get(key)
            owners = list(await pipe.execute(raise_on_error=False))
        found = [
            (i, owner)
            for i, owner in enumerate(owners)
            if owner is not None and not isinstance(owner, BaseException)
        ]
        async with self.client.pipeline(transaction=False) as pipe:
            for i, owner in found:
                worker = parse_owner(owner)[0]
                pipe.execute_command("SPUBLISH", channel_prefix + worker, calls[i][1][0])
            published = list(await pipe.execute(raise_on_error=False)) if found else []
        results: list[Any] = list(owners)
        dead: list[ScriptCall] = []
        for (i, owner), receivers in zip(found, published, strict=True):
            results[i] = receivers if isinstance(receivers, BaseException) else [owner, receivers]
            if receivers == 0:
                dead.append((calls[i][0], [owner]))
        if dead:
            await eval_each(self.client, withdraw, dead)
        return results
