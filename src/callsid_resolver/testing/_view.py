"""What the API shows of a stored conversation, under a profile.

The store holds every conversation as its full truth (all ids, all variables); a profile decides
what a GET, a list row and the `dynamic_variable_filter` see of it, at the moment of the request,
so a call that ends starts showing its ids on the next request (docs/protocol.md §12).
"""

from __future__ import annotations

import copy
import hashlib
import re
import uuid

from .._json import Json
from ._profile import EmulatorProfile

__all__ = [
    "LIVE",
    "filter_variables",
    "index_values",
    "is_live",
    "shown",
    "sip_ids",
    "variables_of",
]

LIVE = ("initiated", "in-progress")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_live(conversation: Json) -> bool:
    return conversation.get("status") in LIVE


def variables_of(conversation: Json) -> Json | None:
    data = conversation.get("conversation_initiation_client_data") or {}
    variables: Json | None = data.get("dynamic_variables")
    return variables


def sip_ids(conversation: Json) -> tuple[str, str] | None:
    """`(call_sid, call_id)` of a SIP-trunk conversation as the observed API shows them: a UUID
    `call_sid` and an RFC 3261 Call-ID; None for any other conversation.

    A stored Call-ID distinct from the UUID is kept. A stored non-UUID `call_sid` is what the
    carrier sent (`X-CALL-ID`, or Twilio's `sip.twilio.callSid` when that header is missing), so
    it becomes the Call-ID and the UUID is derived from the conversation id. Otherwise the
    Call-ID is derived, in the RFC's `word@host` form with an IPv6 host, the form that holds the
    most characters a filter or a path could trip on.
    """
    phone = conversation.get("metadata", {}).get("phone_call") or {}
    if phone.get("type") != "sip_trunking":
        return None
    stored_sid = str(phone.get("call_sid") or "")
    stored_id = phone.get("call_id")
    digest = hashlib.sha256(conversation["conversation_id"].encode()).hexdigest()
    if _UUID.fullmatch(stored_sid):
        call_sid = stored_sid
        if stored_id and stored_id != stored_sid:
            return call_sid, str(stored_id)
    else:
        call_sid = str(uuid.UUID(digest[:32], version=4))
        carrier = stored_id or stored_sid
        if carrier:
            return call_sid, str(carrier)
    return call_sid, f"{digest[32:46]}@[2001:db8::{int(digest[46:50], 16):x}]"


def index_values(conversation: Json) -> set[str]:
    """Every value a profile may show in `system__call_sid` or `system__call_id`, for the store's
    lookup index (a superset: the filter's predicates then decide on the shown variables)."""
    out: set[str] = set()
    for name in ("system__call_sid", "system__call_id"):
        value = (variables_of(conversation) or {}).get(name)
        if value is not None:
            out.add(str(value))
    phone = conversation.get("metadata", {}).get("phone_call") or {}
    out.update(str(phone[k]) for k in ("call_sid", "call_id") if phone.get(k))
    ids = sip_ids(conversation)
    if ids is not None:
        out.update(ids)
    return out


def shown(conversation: Json, profile: EmulatorProfile) -> Json:
    """The GET body of `conversation` under `profile` (the stored object itself when unchanged:
    treat it as read-only)."""
    hide = profile.live_call_hides_ids and is_live(conversation)
    sip = profile.sip_call_ids == "observed" and sip_ids(conversation) is not None
    nulled = (
        profile.null_dynamic_variables
        and not conversation.get("metadata", {}).get("phone_call")
        and not hide
    )
    if not (hide or sip or nulled):
        return conversation
    out = copy.deepcopy(conversation)
    data = out.setdefault("conversation_initiation_client_data", {})
    if sip:
        call_sid, call_id = sip_ids(conversation) or ("", "")
        out["metadata"]["phone_call"] |= {"call_sid": call_sid, "call_id": call_id}
        variables = data.get("dynamic_variables")
        if variables is not None:
            # `system__call_sid` is for Twilio calls; an absent phone variable comes as null.
            variables |= {"system__call_id": call_id, "system__call_sid": None}
    if hide:
        # One third-party measurement of a live call (docs/protocol.md §12): no phone record,
        # `{}` variables and no turns until the call ends.
        out["metadata"].pop("phone_call", None)
        data["dynamic_variables"] = {}
        out["transcript"] = []
    if nulled:
        data["dynamic_variables"] = None
    return out


def filter_variables(conversation: Json, profile: EmulatorProfile) -> Json | None:
    """The variables `dynamic_variable_filter` compares, or None when the filter cannot see the
    conversation at all (a live call, under a profile whose filter is blind to them).

    The filter is its own knob: a live call's GET may hide its variables while an index behind
    the filter still holds them. Computed without copying, since a filtered walk reads many."""
    if not profile.filter_sees_live_calls and is_live(conversation):
        return None
    if profile.null_dynamic_variables and not conversation.get("metadata", {}).get("phone_call"):
        return {}  # its GET shows `"dynamic_variables": null`
    variables = variables_of(conversation) or {}
    if profile.sip_call_ids == "observed":
        ids = sip_ids(conversation)
        if ids is not None and variables:
            return variables | {"system__call_id": ids[1], "system__call_sid": None}
    return variables
