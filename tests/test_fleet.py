"""A fleet of real OS processes sharing one Redis: one upstream lookup for all of them."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import redis

from callsid_resolver._core._keys import Keys
from callsid_resolver.testing import Emulator, EmulatorServer, synthetic_conversations

REDIS_URL = "redis://127.0.0.1:6379/0"

WORKER = r"""
import asyncio, json, sys, time
import redis, redis.asyncio
from callsid_resolver import AsyncCallSidResolver, AsyncElevenLabsClient, AsyncRedisCache

base_url, namespace, call_sid, lookups = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
gate = redis.Redis.from_url("redis://127.0.0.1:6379/0")
while not gate.exists(namespace + ":go"):  # start together, for real contention
    time.sleep(0.005)

async def main():
    client = redis.asyncio.Redis.from_url("redis://127.0.0.1:6379/0")
    async with AsyncElevenLabsClient("fleet-key", base_url=base_url) as api:
        resolver = AsyncCallSidResolver(api, cache=AsyncRedisCache(client), namespace=namespace)
        results = await asyncio.gather(*(resolver.resolve(call_sid) for _ in range(lookups)))
    await client.aclose()
    print(json.dumps([[r.conversation_id, r.source, r.requests] for r in results]))

asyncio.run(main())
"""


@pytest.mark.parametrize("filter_mode", ["support", "reject"])
def test_processes_times_lookups_of_one_cold_sid_make_one_upstream_lookup(
    namespace: str, filter_mode: str
) -> None:
    history = synthetic_conversations(400, seed=5)
    emulator = Emulator(history)
    emulator.filter_mode = filter_mode  # type: ignore[assignment]
    emulator.latency = 0.01  # a lookup that takes a while, so the others really wait
    newest_first = sorted(history, key=lambda c: -c["metadata"]["start_time_unix_secs"])
    target = [c for c in newest_first if c["metadata"].get("phone_call")][120]
    sid = target["metadata"]["phone_call"]["call_sid"]
    processes, lookups = 4, 25
    with EmulatorServer(emulator) as server:
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, server.base_url, namespace, sid, str(lookups)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(processes)
        ]
        time.sleep(1.0)  # let every interpreter start and reach the gate
        redis.Redis.from_url(REDIS_URL).set(f"{namespace}:go", 1, ex=60)
        outputs = [w.communicate(timeout=120)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers)
    results = [row for out in outputs for row in json.loads(out)]
    assert len(results) == processes * lookups
    assert {r[0] for r in results} == {target["conversation_id"]}
    leaders = [r for r in results if r[2] > 0]
    assert len(leaders) == 1  # one lookup in the whole fleet paid; every other one waited
    assert emulator.total_requests == leaders[0][2]
    assert {r[1] for r in results} <= {"filter", "scan", "cache", leaders[0][1]}
    client = redis.Redis.from_url(REDIS_URL)
    assert client.exists(Keys(namespace).sid(sid))
    assert not client.exists(Keys(namespace).lock(sid))
    client.close()
