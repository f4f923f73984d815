"""The fleet's single flight, driven step by step through the sans-I/O plan."""

from __future__ import annotations

import pytest

from callsid_resolver import CachedMapping
from callsid_resolver._core._ops import ClaimFlight, Hints, ReadCache, ServerCapabilities, Settings
from callsid_resolver._core._plan import resolve_plan

SID = "CA" + "7" * 32


def test_a_claim_taken_just_after_the_holder_let_go_reads_its_answer_instead_of_looking_up() -> (
    None
):
    plan = resolve_plan(SID, Hints(), ServerCapabilities(), Settings(shared_flight=True))
    assert isinstance(next(plan), ReadCache)  # the first read: nothing yet
    assert isinstance(plan.send([None]), ClaimFlight)
    # The holder wrote its answer and released the lock in between: our claim succeeds.
    again = plan.send(True)
    assert isinstance(again, ReadCache)
    assert again.keys == (Settings().keys.sid(SID),)
    answer = CachedMapping(call_sid=SID, conversation_id="conv_from_the_holder")
    with pytest.raises(StopIteration) as done:  # no list, no read: the holder's answer
        plan.send([answer])
    assert done.value.value.conversation_id == "conv_from_the_holder"
    assert done.value.value.requests == 0
