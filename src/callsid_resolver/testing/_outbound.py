"""`POST /v1/convai/twilio/outbound-call` and `/v1/convai/sip-trunk/outbound-call`: the
conversation an outbound call creates, and the ids each response hands over (docs/protocol.md
§6, §12)."""

from __future__ import annotations

import copy
import json
import uuid

from .._json import Json
from ._listing import QueryError, invalid
from ._state import EmulatorState
from ._synthetic import sip_call_id, started_conversation

__all__ = ["AGENT_NUMBER", "new_call", "outbound"]

AGENT_NUMBER = "+15550100100"


def outbound(state: EmulatorState, body: bytes, *, sip: bool) -> Json:
    """Place a call: store its conversation (`initiated`) and answer as the API does."""
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        message = "JSON decode error"
        raise QueryError({"type": "json_invalid", "loc": ["body", 0], "msg": message}) from None
    if not isinstance(request, dict):
        raise QueryError(invalid("body", "model_attributes_type", "Input should be an object", 0))
    missing = [n for n in ("agent_id", "agent_phone_number_id", "to_number") if not request.get(n)]
    if missing:
        raise QueryError(*(_missing(name) for name in missing))
    twilio_sid, conversation_id = state.new_call_ids()
    now = int(state.clock())
    if not sip:
        state.add_conversation(new_call(request, twilio_sid, conversation_id, now))
        # `callSid` is camelCase on the wire, unlike every other key.
        return {"success": True, "message": "Success", "conversation_id": conversation_id,
                "callSid": twilio_sid}  # fmt: skip
    call_sid = str(uuid.UUID(twilio_sid[2:], version=4))
    call_id = sip_call_id(call_sid)
    state.add_conversation(new_call(request, call_sid, conversation_id, now, call_id=call_id))
    # UNCONFIRMED: that `sip_call_id` is the SIP Call-ID of the call (`phone_call.call_id`)
    # rather than its UUID `call_sid`; the SDK's model names it only.
    return {"success": True, "message": "Success", "conversation_id": conversation_id,
            "sip_call_id": call_id}  # fmt: skip


def new_call(
    request: Json, call_sid: str, conversation_id: str, now: int, *, call_id: str | None = None
) -> Json:
    """The conversation an outbound call creates: `initiated`, with its phone record and the
    system variables a real call carries (docs/protocol.md §7); a SIP call when `call_id` is
    given (a UUID `call_sid` and that Call-ID, also in `system__call_id`)."""
    client_data = copy.deepcopy(request.get("conversation_initiation_client_data") or {})
    variables = client_data.setdefault("dynamic_variables", {})
    variables |= {
        "system__call_sid": call_sid,
        "system__conversation_id": conversation_id,
        "system__agent_id": request["agent_id"],
        "system__caller_id": AGENT_NUMBER,
        "system__called_number": request["to_number"],
    }
    phone: Json = {
        "type": "twilio",
        "direction": "outbound",
        "phone_number_id": request["agent_phone_number_id"],
        "agent_number": AGENT_NUMBER,
        "external_number": request["to_number"],
        "stream_sid": "MZ" + call_sid[2:],
        "call_sid": call_sid,
    }
    if call_id is not None:
        del phone["stream_sid"]
        phone |= {"type": "sip_trunking", "call_id": call_id}
        variables["system__call_id"] = call_id
    return started_conversation(
        agent_id=request["agent_id"],
        conversation_id=conversation_id,
        status="initiated",
        metadata={
            "start_time_unix_secs": now,
            "conversation_initiation_source": "sip_trunk" if call_id else "twilio",
            "phone_call": phone,
        },
        client_data=client_data,
    )


def _missing(name: str) -> Json:
    return {"type": "missing", "loc": ["body", name], "msg": "Field required", "input": None}
