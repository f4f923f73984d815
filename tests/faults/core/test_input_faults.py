"""Open-ended input (issue #15 items 12 and 15): hints and ids reach no I/O unless valid, and a
bad one is a typed error naming its parameter, never a plain Python or httpx error."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callsid_resolver import (
    CallSidResolver,
    CallSidResolverError,
    ElevenLabsClient,
    InvalidConversationId,
    InvalidHint,
    MemoryCache,
)

from ...conftest import API_KEY, FakeApi, make_conversation, sid_of

INSTANT_HINTS = ("started_after", "started_before")
TEXT_HINTS = ("agent_id", "phone_number_id", "initiation_source")


@pytest.fixture(scope="module")
def api() -> FakeApi:  # module scope: hypothesis runs many examples against one resolver
    return FakeApi([make_conversation(i) for i in range(3)])


@pytest.fixture(scope="module")
def resolver(api: FakeApi) -> CallSidResolver:
    client = ElevenLabsClient(API_KEY, transport=httpx.MockTransport(api))
    return CallSidResolver(client, cache=MemoryCache())


@pytest.mark.parametrize("name", INSTANT_HINTS)
@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, -1, 10**30, True, "2026-01-01", [1], datetime(2026, 1, 1)],
    ids=repr,
)
def test_bad_instants_name_their_parameter(
    resolver: CallSidResolver, api: FakeApi, name: str, value: Any
) -> None:
    before = len(api.requests)
    with pytest.raises(InvalidHint) as info:
        resolver.resolve(sid_of(1), **{name: value})
    assert info.value.parameter == name
    assert name in str(info.value)
    assert isinstance(info.value, ValueError)
    assert len(api.requests) == before


@pytest.mark.parametrize("name", TEXT_HINTS)
@pytest.mark.parametrize("value", ["", "a b", "x\n", "x" * 100_000, 5, ["agent"]], ids=repr)
def test_bad_text_hints_name_their_parameter(
    resolver: CallSidResolver, api: FakeApi, name: str, value: Any
) -> None:
    before = len(api.requests)
    with pytest.raises(InvalidHint) as info:
        resolver.resolve(sid_of(1), **{name: value})
    assert info.value.parameter == name
    assert len(str(info.value)) < 200
    assert len(api.requests) == before


def test_reversed_window_is_refused_before_io(resolver: CallSidResolver, api: FakeApi) -> None:
    now = datetime.now(timezone.utc)
    before = len(api.requests)
    with pytest.raises(InvalidHint, match="started_after"):
        resolver.resolve(sid_of(1), started_after=now, started_before=now - timedelta(hours=1))
    assert len(api.requests) == before


def test_a_100k_character_call_sid_is_refused(resolver: CallSidResolver) -> None:
    with pytest.raises(CallSidResolverError):
        resolver.resolve("CA" + "1" * 100_000)


instants = st.one_of(
    st.none(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())),
    st.text(max_size=30),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


@given(after=instants, before=instants)
@settings(max_examples=300, deadline=None)
def test_any_window_is_valid_or_a_typed_error(
    resolver: CallSidResolver, api: FakeApi, after: Any, before: Any
) -> None:
    count = len(api.requests)
    refused: InvalidHint | None = None
    try:
        resolver.resolve(sid_of(2), started_after=after, started_before=before)
    except InvalidHint as exc:
        refused = exc
    except CallSidResolverError:
        pass  # a valid window that holds no such call: ConversationNotFound
    if refused is not None:
        assert refused.parameter in INSTANT_HINTS
        assert len(api.requests) == count


@given(
    cid=st.one_of(st.text(max_size=300), st.integers(), st.none()),
    sid=st.one_of(st.just(sid_of(9)), st.text(max_size=40)),
)
@settings(max_examples=300, deadline=None)
def test_remember_accepts_only_valid_ids(resolver: CallSidResolver, cid: Any, sid: Any) -> None:
    try:
        resolver.remember(sid, cid)
    except CallSidResolverError as exc:
        refused: CallSidResolverError | None = exc
    else:
        refused = None
    if refused is not None:
        assert isinstance(refused, ValueError)
        return
    assert resolver.resolve(sid).conversation_id == cid
    resolver.forget(sid)


@pytest.mark.parametrize("bad", ["..", "a/b", "", "x" * 300])
def test_remember_refuses_path_breaking_ids(resolver: CallSidResolver, bad: str) -> None:
    with pytest.raises(InvalidConversationId):
        resolver.remember(sid_of(9), bad)
