"""Throughput and latency of sending into a live conversation, on loopback against the emulator.

    python -m benchmarks.live_throughput [--messages 5000]

Measures one `ConversationSession` (confirmed sends one at a time, confirmed sends pipelined, and
unconfirmed sends), the `Sender` over that session, and the `MonitorChannel`. "Confirmed" means the
server's WebSocket layer answered a ping sent after the message (see `live/_transport.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from callsid_resolver import AsyncCallSidResolver, AsyncElevenLabsClient
from callsid_resolver.live import ConversationSession, MonitorChannel, Sender, SessionRegistry
from callsid_resolver.testing import Emulator, EmulatorServer

from .sending import burst, serial

AGENT = "agent_fake0example0agent0000000001"
LIVE = "conv_fake0inbound0live00000000001"
SID = "CA" + "5" * 32


def row(name: str, rate: float, latencies: list[float] | None = None) -> None:
    text = f"{name:<44} {rate:>10,.0f} msg/s"
    if latencies:
        ms = sorted(x * 1000 for x in latencies)
        p95 = ms[int(len(ms) * 0.95) - 1]
        text += f"   latency median {statistics.median(ms):.3f} ms, p95 {p95:.3f} ms"
    print(text)


async def main(n: int) -> None:
    emulator = Emulator(recording="default")
    emulator.ping_interval = 1.0
    with EmulatorServer(emulator) as server:
        async with AsyncElevenLabsClient("bench-key", base_url=server.base_url) as client:
            async with ConversationSession(AGENT, client=client) as s:
                rate, lat = await serial(lambda i: s.send_contextual_update(f"s{i}"), n)
                row("session, confirmed, one at a time", rate, lat)
                row(
                    "session, confirmed, burst (pipelined)",
                    await burst(lambda i: s.send_contextual_update(f"b{i}"), n),
                )
                registry = SessionRegistry()
                await registry.register(s, call_sid=SID)
                sender = Sender(registry=registry, queue_size=n)
                rate, lat = await serial(
                    lambda i: sender.send_contextual_update(f"r{i}", call_sid=SID), n
                )
                row("Sender→session, one at a time", rate, lat)
                row(
                    "Sender→session, burst",
                    await burst(lambda i: sender.send_contextual_update(f"q{i}", call_sid=SID), n),
                )
                await sender.aclose()
            async with ConversationSession(AGENT, client=client, confirm=False) as s:
                rate, lat = await serial(lambda i: s.send_contextual_update(f"u{i}"), n)
                row("session, unconfirmed, one at a time", rate, lat)
            resolver = AsyncCallSidResolver(client)
            async with MonitorChannel(client, resolver=resolver) as monitor:
                await monitor.contextual_update("warm-up", conversation_id=LIVE)  # handshake
                rate, lat = await serial(
                    lambda i: monitor.contextual_update(f"m{i}", conversation_id=LIVE), n
                )
                row("monitor, confirmed, one at a time", rate, lat)
                row(
                    "monitor, confirmed, burst (pipelined)",
                    await burst(
                        lambda i: monitor.contextual_update(f"n{i}", conversation_id=LIVE), n
                    ),
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    asyncio.run(main(parser.parse_args().messages))
