"""`callsid-resolver demo`: the library's main job, offline, against the bundled emulator.

Serves the emulator on a loopback port with the bundled recording plus a generated history of
1,000 calls, then resolves call SIDs the ways a real service meets them, printing which step
answered and how many HTTP requests each cost. `profile="observed"` plays the API as third
parties report it: the live call hides its SID until it ends, and a SIP call shows an RFC 3261
Call-ID next to its UUID; the same steps then show what changes.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TextIO

import httpx

from ._exceptions import ConversationNotFound
from ._sync.client import ElevenLabsClient
from ._sync.resolver import CallSidResolver
from .webhooks import mapping_from_outbound_call

if TYPE_CHECKING:
    from .testing._profile import ProfileLike

__all__ = ["AGENT", "DEMO_KEY", "LIVE_CALL", "LIVE_CONVERSATION", "SIP_CONVERSATION", "run_demo"]

DEMO_KEY = "demo-key"
LIVE_CALL = "CAdeadbeef000000000000000000000001"  # the in-progress call of the recording
LIVE_CONVERSATION = "conv_fake0inbound0live00000000001"
SIP_CONVERSATION = "conv_fake0sip0trunk0done00000006"
AGENT = "agent_fake0example0agent0000000001"


def run_demo(*, json_lines: bool, out: TextIO, profile: ProfileLike = "documented") -> int:
    """Run the demo against the emulator playing `profile` (a name, a profile file or an
    `EmulatorProfile`) and print one row per lookup; returns the exit status, 0."""
    from .testing import Emulator, EmulatorServer, synthetic_conversations

    history = synthetic_conversations(1000, seed=7, agent_id=AGENT)
    emulator = Emulator(recording="default", profile=profile)
    for conversation in history:
        emulator.add_conversation(conversation)
    newest_first = sorted(history, key=lambda c: -int(c["metadata"]["start_time_unix_secs"]))
    deep = [c for c in newest_first if (c["metadata"].get("phone_call") or {}).get("call_sid")]
    target, neighbour = deep[249], deep[240]
    last_ten_minutes = int(newest_first[0]["metadata"]["start_time_unix_secs"]) - 600

    rows: list[dict[str, Any]] = []
    with EmulatorServer(emulator, host="127.0.0.1", port=0) as server:
        client = ElevenLabsClient(DEMO_KEY, base_url=server.base_url)
        with client:
            resolver = CallSidResolver(client)

            def step(title: str, call_sid: str, **hints: Any) -> None:
                try:
                    r = resolver.resolve(call_sid, **hints)
                except ConversationNotFound as exc:
                    note = "live: SID hidden until the call ends" if exc.live else ""
                    rows.append(
                        {
                            "step": title,
                            "call_sid": call_sid,
                            "result": "not found",
                            "source": "-",
                            "requests": exc.searched.requests if exc.searched else 0,
                            "note": note,
                        }
                    )
                    return
                rows.append(
                    {
                        "step": title,
                        "call_sid": call_sid,
                        "result": r.conversation_id,
                        "source": r.source,
                        "requests": r.requests,
                        "note": f"matched {r.matched_by}" if r.matched_by else "",
                    }
                )

            step("a tool during a live call", LIVE_CALL, agent_id=AGENT, in_progress=True)
            step("the same call again", LIVE_CALL, agent_id=AGENT, in_progress=True)
            emulator.end_session(LIVE_CONVERSATION)
            step("the same call after it ended", LIVE_CALL, agent_id=AGENT)
            sip = emulator.shown(SIP_CONVERSATION) or {}
            step("a SIP call by its Call-ID", sip["metadata"]["phone_call"]["call_id"])
            emulator.filter_mode = "reject"
            resolver = CallSidResolver(client)
            step("250th most recent phone call, filter unavailable", _sid(target))
            step("a call the scan passed on its way", _sid(neighbour))
            response = httpx.post(
                f"{server.base_url}/v1/convai/twilio/outbound-call",
                headers={"xi-api-key": DEMO_KEY},
                json={
                    "agent_id": AGENT,
                    "agent_phone_number_id": "phnum_fake0twilio0number0000000001",
                    "to_number": "+15550100999",
                },
            ).json()
            learned = mapping_from_outbound_call(response, agent_id=AGENT)
            if learned is not None:
                resolver.remember(*learned)
            step("outbound call, primed from its response", response["callSid"])
            step(
                "unknown SID, calls of the last 10 minutes",
                "CA" + "0" * 32,
                started_after=last_ten_minutes,
            )
    _print(rows, json_lines=json_lines, out=out, profile_name=emulator.profile.name)
    return 0


def _sid(conversation: dict[str, Any]) -> str:
    return str(conversation["metadata"]["phone_call"]["call_sid"])


def _print(rows: list[dict[str, Any]], *, json_lines: bool, out: TextIO, profile_name: str) -> None:
    if json_lines:
        for row in rows:
            out.write(json.dumps(row) + "\n")
        return
    out.write(
        "callsid-resolver demo: the bundled ElevenLabs emulator on loopback, no key, no network"
        f" ({profile_name} profile)\n\n"
    )
    width = max(len(r["step"]) for r in rows)
    for r in rows:
        out.write(
            f"  {r['step']:<{width}}  {r['result']:<34}  {r['source']:<7} "
            f"{r['requests']:>4} request(s)  {r['note']}".rstrip()
            + "\n"
        )
