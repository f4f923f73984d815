"""`callsid-resolver demo`: the library's main job, offline, against the bundled emulator.

Serves the emulator on a loopback port with the bundled recording plus a generated history of
1,000 calls, then resolves call SIDs the ways a real service meets them, printing which step
answered and how many HTTP requests each cost.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

import httpx

from ._client import ElevenLabsClient
from ._exceptions import ConversationNotFound
from ._resolver import CallSidResolver
from .webhooks import prime_from_outbound_call

DEMO_KEY = "demo-key"
LIVE_CALL = "CAdeadbeef000000000000000000000001"  # the in-progress call of the recording
AGENT = "agent_fake0example0agent0000000001"


def run_demo(*, json_lines: bool, out: TextIO) -> int:
    from .testing import Emulator, EmulatorServer, synthetic_conversations

    history = synthetic_conversations(1000, seed=7, agent_id=AGENT)
    emulator = Emulator(recording="default")
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
                    rows.append(
                        {
                            "step": title,
                            "call_sid": call_sid,
                            "result": "not found",
                            "source": "-",
                            "requests": exc.searched.requests if exc.searched else 0,
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
                    }
                )

            step("live call, server-side filter", LIVE_CALL, agent_id=AGENT)
            step("the same call again", LIVE_CALL, agent_id=AGENT)
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
            prime_from_outbound_call(resolver, response, agent_id=AGENT)
            step("outbound call, primed from its response", response["callSid"])
            step(
                "unknown SID, calls of the last 10 minutes",
                "CA" + "0" * 32,
                started_after=last_ten_minutes,
            )
    _print(rows, json_lines=json_lines, out=out)
    return 0


def _sid(conversation: dict[str, Any]) -> str:
    return str(conversation["metadata"]["phone_call"]["call_sid"])


def _print(rows: list[dict[str, Any]], *, json_lines: bool, out: TextIO) -> None:
    if json_lines:
        for row in rows:
            out.write(json.dumps(row) + "\n")
        return
    out.write(
        "callsid-resolver demo: the bundled ElevenLabs emulator on loopback, no key, no network\n\n"
    )
    width = max(len(r["step"]) for r in rows)
    for r in rows:
        out.write(
            f"  {r['step']:<{width}}  {r['result']:<34}  {r['source']:<7} "
            f"{r['requests']:>4} request(s)\n"
        )
