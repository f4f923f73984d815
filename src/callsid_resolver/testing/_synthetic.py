"""Generated histories for benchmarks and load tests: deterministic from a seed, and fast
(100,000 conversations in about a second).

Conversation ids are `conv_` + 28 lowercase alphanumerics, Twilio call SIDs `CA` + 32 hex; a SIP
call has a UUID `call_sid` and an RFC 3261 Call-ID (`word@host`, the host a name, an IPv4 or an
IPv6 address: a third of them hold `:`); numbers are `+1555…`. Every conversation parses with
the official SDK's `GetConversationResponseModel`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from .._json import Json
from ._store import sort_key

__all__ = [
    "AGENT",
    "NUMBERS",
    "conversation_at_depth",
    "newest_first",
    "sip_call_id",
    "started_conversation",
    "synthetic_conversations",
]

AGENT = "agent_fake0example0agent0000000001"
NUMBERS = ("phnum_fake0twilio0number0000000001", "phnum_fake0sip0number00000000002")
_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"


def synthetic_conversations(
    n: int,
    *,
    seed: int = 0,
    agent_id: str = AGENT,
    start_unix: int = 1_786_000_000,
    live: int = 0,
    phone_share: float = 0.8,
) -> list[Json]:
    """`n` conversations, one every 30-90 s from `start_unix` on; the `live` newest are in
    progress. About `phone_share` of them are phone calls (Twilio inbound/outbound, SIP trunk),
    the rest web-widget chats without a phone record. Same seed, same history."""
    rng = random.Random(seed)
    out: list[Json] = []
    start = start_unix
    for i in range(n):
        start += rng.randint(30, 90)
        conversation_id = "conv_" + "".join(rng.choices(_ALNUM, k=28))
        status = "in-progress" if i >= n - live else rng.choice(("done",) * 9 + ("failed",))
        kind = rng.random()
        if kind >= phone_share:
            out.append(_conversation(agent_id, conversation_id, status, start, "widget", None))
            continue
        if kind < phone_share * 0.8:
            sid = "CA" + rng.getrandbits(128).to_bytes(16, "big").hex()
            direction = "inbound" if rng.random() < 0.7 else "outbound"
            phone = {"type": "twilio", "direction": direction, "phone_number_id": NUMBERS[0],
                     "stream_sid": "MZ" + sid[2:], "call_sid": sid}  # fmt: skip
            source = "twilio"
        else:
            sid = str(_uuid(rng))
            phone = {"type": "sip_trunking", "direction": "inbound", "phone_number_id": NUMBERS[1],
                     "call_id": sip_call_id(sid), "call_sid": sid}  # fmt: skip
            source = "sip_trunk"
        phone |= {
            "agent_number": "+15550100100",
            "external_number": f"+1555{rng.randrange(10**7):07d}",
        }
        out.append(_conversation(agent_id, conversation_id, status, start, source, phone))
    return out


def newest_first(conversations: Iterable[Json]) -> list[Json]:
    """A history in the emulator's listing order: start time descending, then conversation id."""
    return sorted(conversations, key=sort_key)


def conversation_at_depth(
    conversations: Iterable[Json], depth: int, *, phone_only: bool = False
) -> Json:
    """The conversation at position `depth` (1 = newest) of a history, as the list endpoint
    orders it; with `phone_only`, counting phone calls only (a scan's GETs skip web chats)."""
    ordered = newest_first(conversations)
    if phone_only:
        ordered = [c for c in ordered if c["metadata"].get("phone_call")]
    if not 1 <= depth <= len(ordered):
        raise IndexError(f"depth {depth} outside 1..{len(ordered)}")
    return ordered[depth - 1]


def sip_call_id(uuid: str) -> str:
    """An RFC 3261 Call-ID derived from a SIP call's UUID (no draw from the generator, so a
    seed's history stays what it was)."""
    digits = uuid.replace("-", "")
    n = int(digits[-4:], 16)
    hosts = (f"pbx{n % 50}.example.com", f"192.0.2.{n % 254 + 1}", f"[2001:db8::{n:x}]")
    return f"{digits[:14]}@{hosts[n % 3]}"


def _uuid(rng: random.Random) -> str:
    h = rng.getrandbits(128).to_bytes(16, "big").hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _conversation(
    agent_id: str, conversation_id: str, status: str, start: int, source: str, phone: Json | None
) -> Json:
    live = status == "in-progress"
    variables: Json = {"system__agent_id": agent_id, "system__conversation_id": conversation_id}
    metadata: Json = {
        "start_time_unix_secs": start,
        "call_duration_secs": 0 if live else 60,
        "conversation_initiation_source": source,
    }
    if phone is not None:
        metadata["phone_call"] = phone
        variables["system__call_sid"] = phone["call_sid"]
        if "call_id" in phone:
            variables["system__call_id"] = phone["call_id"]
    return {
        "agent_id": agent_id,
        "agent_name": "Example Support Agent",
        "conversation_id": conversation_id,
        "status": status,
        "metadata": metadata,
        "conversation_initiation_client_data": {"dynamic_variables": variables},
        "has_audio": not live,
        "has_user_audio": not live,
        "has_response_audio": not live,
        "has_auxiliary_audio": False,
        "transcript": [
            {"role": "agent", "message": "Hello, how can I help?", "time_in_call_secs": 0}
        ],
    }


def started_conversation(
    *, agent_id: str, conversation_id: str, status: str, metadata: Json, client_data: Json
) -> Json:
    """A conversation as the API shows it when it has just begun: no audio, no transcript, a
    duration of 0; `metadata` adds its start time, source and phone record."""
    return {
        "agent_id": agent_id,
        "conversation_id": conversation_id,
        "status": status,
        "metadata": {"call_duration_secs": 0} | metadata,
        "conversation_initiation_client_data": client_data,
        "has_audio": False,
        "has_user_audio": False,
        "has_response_audio": False,
        "has_auxiliary_audio": False,
        "transcript": [],
    }
