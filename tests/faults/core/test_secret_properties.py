"""Properties of the scrubbing (issue #15 item 14), over open-ended input: whatever a server
echoes and wherever the key sits in it, no error text shows the key; no phone number inside a
call id survives in a `ConversationNotFound` message, and a Twilio SID is never mangled."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callsid_resolver import ApiError, ConversationNotFound, ListQuery
from callsid_resolver._core._api import list_conversations
from callsid_resolver._core._secrets import mask_phone_numbers
from callsid_resolver._models import ConversationsPage

KEY = "sk_live_7f3a9c0e5b2d4e6f8a1b3c5d7e9f0a2b4c6d8e0f"

leaves = st.one_of(
    st.text(max_size=20).map(lambda t: t + KEY), st.text(max_size=20), st.integers(), st.none()
)
details = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(detail=details, status=st.sampled_from([400, 401, 403, 404, 422, 429, 500, 502]))
@settings(max_examples=300, deadline=None)
def test_no_echoed_detail_shows_the_key(detail: Any, status: int) -> None:
    body = json.dumps({"detail": detail}).encode()
    response = httpx.Response(status, content=body, headers={"content-type": "application/json"})
    call = list_conversations(ListQuery())
    with pytest.raises(ApiError) as info:
        call.decode(response, secrets=(KEY,))
    shown = str(info.value) + repr(info.value.detail) + repr(info.value.args)
    assert KEY not in shown


@given(text=st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_no_echoed_text_body_shows_the_key(text: str) -> None:
    body = (text + KEY + text).encode()
    response = httpx.Response(502, content=body, headers={"content-type": "text/html"})
    call = list_conversations(ListQuery())
    with pytest.raises(ApiError) as info:
        call.decode(response, secrets=(KEY,))
    assert KEY not in str(info.value)


@given(
    number=st.integers(min_value=10**6, max_value=10**15 - 1),
    plus=st.booleans(),
    tail=st.sampled_from(["@10.0.0.1", "@carrier.example", "", ";tag=1"]),
    head=st.sampled_from(["", "sip:", "tel:"]),
)
@settings(max_examples=300, deadline=None)
def test_phone_numbers_in_call_ids_are_masked(
    number: int, plus: bool, tail: str, head: str
) -> None:
    digits = str(number)
    sid = f"{head}{'+' if plus else ''}{digits}{tail}"
    text = str(ConversationNotFound(sid, None))
    assert digits not in text
    assert digits[-4:] in text


@given(hex_digits=st.text("0123456789abcdef", min_size=32, max_size=32))
@settings(max_examples=200, deadline=None)
def test_twilio_sids_are_never_masked(hex_digits: str) -> None:
    sid = "CA" + hex_digits
    assert mask_phone_numbers(sid) == sid
    assert sid in str(ConversationNotFound(sid, None))


def test_a_valid_page_still_decodes() -> None:
    body = {"conversations": [], "has_more": False}
    response = httpx.Response(200, json=body)
    call = list_conversations(ListQuery())
    assert call.decode(response, secrets=(KEY,)) == ConversationsPage(conversations=[])
