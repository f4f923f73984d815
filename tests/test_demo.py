"""The demo shows what changes between the documented and the observed API."""

from __future__ import annotations

import io
import json
from typing import Any

from callsid_resolver._demo import run_demo


def rows(profile: str) -> dict[str, Any]:
    out = io.StringIO()
    assert run_demo(json_lines=True, out=out, profile=profile) == 0
    return {row["step"]: row for row in map(json.loads, out.getvalue().splitlines())}


def test_the_demo_under_both_profiles() -> None:
    documented, observed = rows("documented"), rows("observed")
    assert documented.keys() == observed.keys()
    live = "a tool during a live call"
    assert (documented[live]["source"], documented[live]["requests"]) == ("filter", 2)
    assert observed[live]["result"] == "not found"
    assert observed[live]["note"] == "live: SID hidden until the call ends"
    again = observed["the same call again"]
    assert again["requests"] < observed[live]["requests"]  # the hidden live call is remembered
    ended = observed["the same call after it ended"]
    assert (ended["result"], ended["source"]) == ("conv_fake0inbound0live00000000001", "filter")
    sip = observed["a SIP call by its Call-ID"]
    assert "@[2001:db8::" in sip["call_sid"]
    assert (sip["result"], sip["note"]) == (
        "conv_fake0sip0trunk0done00000006",
        "matched phone_call.call_id",
    )


def test_the_text_output_names_the_profile() -> None:
    out = io.StringIO()
    run_demo(json_lines=False, out=out, profile="observed")
    assert "(observed profile)" in out.getvalue()
    assert "live: SID hidden until the call ends" in out.getvalue()
