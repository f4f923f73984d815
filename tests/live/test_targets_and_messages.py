"""The sans-I/O pieces under the sender and the router: one `Target` per send, the router's
wire records and key names (`_router_messages`), and the namespace every Redis key lives under."""

from __future__ import annotations

import pytest
import redis.asyncio

from callsid_resolver import InvalidCallSid, InvalidSend
from callsid_resolver.live import (
    ClientEvent,
    ContextualUpdate,
    Pong,
    RedisMailbox,
    RedisRouter,
    UserMessage,
)
from callsid_resolver.live._router_messages import (
    MAX_RUN,
    MAX_RUN_SIZE,
    Run,
    chunk_run,
    decode,
    encode_run,
    owner_record,
    parse_owner,
    route_key,
)
from callsid_resolver.live._target import Target
from callsid_resolver.live._tools import ToolCalls

from .conftest import REDIS_URL

SID = "CA" + "5eed" * 8


def test_a_target_is_checked_once_and_named_one_way() -> None:
    by_sid = Target.of(call_sid=SID, conversation_id="conv_1")
    by_conversation = Target.of(conversation_id="conv_1")
    assert (by_sid.label, by_sid.lane_key, by_sid.short) == (f"call {SID}", SID, SID)
    assert by_conversation.label == "conversation conv_1"
    assert by_conversation.lane_key == "conversation:conv_1"
    assert by_conversation.short == "conv_1"
    with pytest.raises(InvalidSend, match="give call_sid or conversation_id"):
        Target.of()
    with pytest.raises(InvalidCallSid):
        Target.of(call_sid="CA-not a sid", conversation_id="conv_1")
    assert isinstance(InvalidSend("x"), ValueError)  # what `owner()` callers caught before


def test_a_run_is_encoded_in_order_and_decodes_into_a_checked_record() -> None:
    events: list[ClientEvent] = [
        ContextualUpdate(text="a"),
        Pong(event_id=7),  # not routable: refused by position, never encoded
        UserMessage(text="b"),
    ]
    chunks, refused = chunk_run(events)
    assert refused == [1]
    assert [position for position, _ in chunks[0]] == [0, 2]
    target = Target.of(call_sid=SID)
    message = decode(encode_run(9, "worker-a", target, [json for _, json in chunks[0]]))
    assert isinstance(message, Run)
    assert (message.id, message.sender, message.sid, message.cid) == (9, "worker-a", SID, None)
    assert [event.type for event in message.events] == ["contextual_update", "user_message"]
    assert message.target == target.label


def test_a_run_is_cut_at_its_count_and_size_limits() -> None:
    many = [ContextualUpdate(text=str(i)) for i in range(MAX_RUN + 1)]
    chunks, _ = chunk_run(many)
    assert [len(chunk) for chunk in chunks] == [MAX_RUN, 1]
    big = "x" * (MAX_RUN_SIZE // 2)
    chunks, _ = chunk_run([ContextualUpdate(text=big) for _ in range(3)])
    assert [len(chunk) for chunk in chunks] == [1, 1, 1]  # two of them exceed the size


def test_ownership_keys_and_records_come_from_the_namespace() -> None:
    from callsid_resolver._core._keys import Keys

    keys = Keys("fleet-a")
    assert route_key(keys, Target.of(call_sid=SID)) == f"fleet-a:route:sid:{{{SID}}}"
    assert route_key(keys, Target.of(conversation_id="conv_1")) == "fleet-a:route:conv:{conv_1}"
    assert parse_owner(owner_record("worker-a", "conv_1").encode()) == ("worker-a", "conv_1")
    assert parse_owner("worker-a") == ("worker-a", "")


def test_router_and_mailbox_default_to_the_librarys_namespace() -> None:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    assert RedisMailbox(client).key(SID) == f"callsid-resolver:mailbox:{{{SID}}}"
    assert RedisMailbox(client, namespace="ns").key(SID) == f"ns:mailbox:{{{SID}}}"
    router = RedisRouter(client, worker_id="w")
    assert router.keys.route_sid(SID) == f"callsid-resolver:route:sid:{{{SID}}}"
    assert router.keys.worker_channel("w") == "callsid-resolver:route:worker:w"
    with pytest.raises(ValueError, match="namespace"):
        RedisRouter(client, namespace="has space")
    with pytest.raises(ValueError, match="namespace"):
        RedisMailbox(client, namespace="{tag}")


def test_tool_calls_need_room_for_one_handler() -> None:
    async def noop(*_: object) -> None:
        return None

    with pytest.raises(ValueError, match="max_tool_calls"):
        ToolCalls({}, answer=noop, refuse=noop, max_running=0, max_pending=1)
