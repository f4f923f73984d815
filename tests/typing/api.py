"""Type-checked only (mypy --strict in .ci/run), never run: the public API as a caller writes it.

If a signature change breaks a caller's types, this file stops type-checking.
"""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import redis

from callsid_resolver import (
    AsyncCallSidResolver,
    AsyncElevenLabsClient,
    CallIdField,
    CallSidResolver,
    ConversationNotFound,
    ConversationSummary,
    ElevenLabsClient,
    MemoryCache,
    RedisCache,
    Resolution,
    RetryPolicy,
    TieredCache,
)
from callsid_resolver.webhooks import mapping_from_outbound_call


def sync_usage() -> str:
    client = ElevenLabsClient(
        "key",
        base_url="https://api.eu.residency.elevenlabs.io",
        timeout=httpx.Timeout(5.0),
        retry=RetryPolicy(max_attempts=3, deadline=10),
    )
    cache = TieredCache(MemoryCache(maxsize=10_000, ttl=600), RedisCache(redis.Redis()))
    resolver = CallSidResolver(
        client, cache=cache, max_scan=500, concurrency=4, namespace="workspace-a", live_first=True
    )
    try:
        res: Resolution = resolver.resolve(
            "CA0123456789abcdef0123456789abcdef",
            agent_id="agent_x",
            started_after=datetime(2026, 1, 1, tzinfo=timezone.utc),
            started_before=1_900_000_000,
        )
    except ConversationNotFound as exc:
        return str(exc.searched) if not exc.live else "learn the mapping at the source"
    during_the_call: Resolution = resolver.resolve(
        "a84b4c76e66710@[2001:db8::1]", agent_id="agent_x", in_progress=True
    )
    matched: CallIdField | None = during_the_call.matched_by
    summaries: list[ConversationSummary] = list(
        client.iter_conversations(agent_id="agent_x", exclude_statuses=["done"], page_size=100)
    )
    resolver.remember("CA0123456789abcdef0123456789abcdef", res.conversation_id)
    response = {"success": True, "callSid": res.call_sid, "conversation_id": "conv_x"}
    learned = mapping_from_outbound_call(response, agent_id="agent_x")
    if learned is not None:
        resolver.remember(*learned)
    return f"{res.conversation_id} {res.source} {res.requests} {len(summaries)} {matched}"


async def async_usage() -> int:
    async with AsyncElevenLabsClient("key") as client:
        resolver = AsyncCallSidResolver(client, cache=MemoryCache(), negative_ttl=10.0)
        res = await resolver.resolve("CA0123456789abcdef0123456789abcdef", in_progress=True)
        page = await client.list_conversations(cursor=None, sort_direction="asc")
        await resolver.remember(res.call_sid, res.conversation_id, agent_id=res.agent_id)
        return res.requests + len(page.conversations)
