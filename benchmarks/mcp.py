"""The mailbox MCP tool: latency of a tool call (cold and primed) and ElevenLabs requests per call.

Three processes on loopback: the emulator (a synthetic history), `callsid-resolver mcp` on the
shared Redis, and this one, which plays both the agent (the real MCP client over streamable HTTP,
one client per call, as each conversation has its own) and the backends (posting with a `Sender`,
then resolving each call SID with a `CallSidResolver` on the same Redis).

- cold: the first tool call of a call; the server writes the mapping (2 keys) and drains.
- primed: later tool calls of the same call; the memo skips the write, the drain remains.
- requests per call: what the backends spend resolving the 100 call SIDs after the tool calls,
  against the same resolution without priming (a fresh cache namespace).

    python -m benchmarks.mcp [--calls 100] [--repeat 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import redis
import redis.asyncio

from callsid_resolver import CallSidResolver, ElevenLabsClient, RedisCache
from callsid_resolver.live import RedisMailbox, Sender
from callsid_resolver.testing import EmulatorProcess, synthetic_conversations

REDIS_URL = "redis://127.0.0.1:6379/0"
SECRET = "benchmark-secret"  # noqa: S105 - a throwaway for a loopback server
HISTORY, SEED = 2000, 13


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mcp_process(namespace: str) -> Iterator[str]:
    port = free_port()
    args = [sys.executable, "-m", "callsid_resolver", "mcp", "--port", str(port),
            "--redis", REDIS_URL, "--namespace", namespace, "--secret", SECRET]  # fmt: skip
    # Our own interpreter and fixed arguments: nothing untrusted reaches the command line.
    process = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)  # noqa: S603
    try:
        assert process.stderr is not None
        process.stderr.readline()
        for _ in range(400):
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def agent_and_backends(
    url: str, namespace: str, calls: list[tuple[str, str]], repeat: int
) -> dict[str, list[float]]:
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    from mcp import Client

    connection = redis.asyncio.Redis.from_url(REDIS_URL)
    sender = Sender(mailbox=RedisMailbox(connection, namespace=namespace))
    times: dict[str, list[float]] = {"cold": [], "primed": []}
    headers = {"Authorization": f"Bearer {SECRET}"}
    for sid, conversation_id in calls:
        async with (
            create_mcp_http_client(headers=headers) as http,
            Client(streamable_http_client(url, http_client=http)) as agent,
        ):
            for turn in range(1 + repeat):
                await sender.send_contextual_update(f"update {turn}", call_sid=sid)
                started = time.perf_counter()
                result = await agent.call_tool(
                    "pending_updates", {"call_sid": sid, "conversation_id": conversation_id}
                )
                elapsed = time.perf_counter() - started
                assert result.structured_content["count"] == 1, result
                times["cold" if turn == 0 else "primed"].append(elapsed * 1000)
    await sender.aclose()
    await connection.aclose()
    return times


def requests_per_call(base_url: str, namespace: str, sids: list[str], remote: Any) -> float:
    client = redis.Redis.from_url(REDIS_URL)
    before = remote.total_requests
    with ElevenLabsClient("benchmark-key", base_url=base_url) as api:
        resolver = CallSidResolver(api, cache=RedisCache(client), namespace=namespace)
        for sid in sids:
            resolver.resolve(sid)
    client.close()
    return float(remote.total_requests - before) / len(sids)


def cleanup(*namespaces: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    for namespace in namespaces:
        keys = list(client.scan_iter(f"{namespace}*"))
        if keys:
            client.delete(*keys)
    client.close()


def measure_mcp(calls_count: int = 100, repeat: int = 4) -> dict[str, Any]:
    """Tool-call latencies (ms) and ElevenLabs requests per call; `python -m benchmarks` runs it
    as its `mcp` section, `main` prints it."""
    phone = [
        c for c in synthetic_conversations(HISTORY, seed=SEED) if c["metadata"].get("phone_call")
    ]
    calls = [(c["metadata"]["phone_call"]["call_sid"], c["conversation_id"]) for c in phone]
    calls = calls[-calls_count:]  # the newest, as live calls would be
    namespace, baseline = f"bench-mcp-{uuid.uuid4().hex[:8]}", f"bench-cold-{uuid.uuid4().hex[:8]}"
    try:
        with (
            EmulatorProcess(synthetic=HISTORY, seed=SEED) as emulator,
            mcp_process(namespace) as url,
        ):
            before = emulator.remote.total_requests
            times = asyncio.run(agent_and_backends(url, namespace, calls, repeat))
            by_server = (emulator.remote.total_requests - before) / len(calls)
            sids = [sid for sid, _ in calls]
            primed = requests_per_call(emulator.base_url, namespace, sids, emulator.remote)
            unprimed = requests_per_call(emulator.base_url, baseline, sids, emulator.remote)
    finally:
        cleanup(namespace, baseline)
    return {
        "calls": len(calls),
        "repeat": repeat,
        "tool_calls_ms": {
            kind: {"n": len(v), "median": statistics.median(v), "p95": percentile(v, 0.95)}
            for kind, v in times.items()
        },
        "requests_per_call": {"server": by_server, "primed": primed, "unprimed": unprimed},
    }


def markdown(result: dict[str, Any]) -> list[str]:
    per_call = result["requests_per_call"]
    lines = [
        "## The mailbox MCP tool",
        "",
        f"{result['calls']} calls, {result['repeat']} primed tool calls each (ms, real MCP "
        "client over HTTP)",
        "",
        "| tool call | n | median | p95 |",
        "|---|---|---|---|",
    ]
    for kind, t in result["tool_calls_ms"].items():
        lines.append(f"| {kind} | {t['n']} | {t['median']:.2f} | {t['p95']:.2f} |")
    return [
        *lines,
        "",
        "| ElevenLabs requests per call | |",
        "|---|---|",
        f"| MCP server (priming + drain) | {per_call['server']:.2f} |",
        f"| backend resolve after the tool call (primed) | {per_call['primed']:.2f} |",
        f"| backend resolve without priming (baseline) | {per_call['unprimed']:.2f} |",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=4, help="primed tool calls per call")
    args = parser.parse_args()
    print("\n".join(markdown(measure_mcp(args.calls, args.repeat))))


if __name__ == "__main__":
    main()
