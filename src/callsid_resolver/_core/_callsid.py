"""Validation of call SIDs, before any I/O."""

from __future__ import annotations

import re

from .._exceptions import InvalidCallSid

__all__ = [
    "MAX_LENGTH",
    "TWILIO_CALL_SID",
    "filter_can_express",
    "is_twilio_call_sid",
    "validate_call_sid",
]

# Twilio call SIDs are "CA" + 32 hex digits; SIP trunks carry other ids (UUIDs, RFC 3261
# Call-IDs, X-CALL-ID header values), so the Twilio form is recognised, not required.
TWILIO_CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
MAX_LENGTH = 256
# The list endpoint's filter is `name:op:value` (docs/protocol.md §2). An RFC 3261 Call-ID may
# hold `:` (`a84b4c76e66710@[2001:db8::1]`, §12); whether the server splits the expression at
# the first two `:` only, so that the value may hold more, is not documented, and `|` separates
# `in` values. An id holding either is accepted and looked up without the filter.
_UNSURE_IN_FILTER = frozenset(":|")


def validate_call_sid(value: object) -> str:
    """Return the call SID unchanged, or raise `InvalidCallSid` saying what is wrong with it."""
    if not isinstance(value, str):
        raise InvalidCallSid(f"expected a string, got {type(value).__name__}")
    if TWILIO_CALL_SID.fullmatch(value):
        return value  # the common case, on every cached lookup: skip the per-character checks
    if not value:
        raise InvalidCallSid("empty string")
    if len(value) > MAX_LENGTH:
        raise InvalidCallSid(f"{len(value)} characters, more than {MAX_LENGTH}")
    for ch in value:
        if ch.isspace() or not ch.isprintable():
            raise InvalidCallSid(f"contains whitespace or a control character ({ch!r})")
    if value.startswith("CA") and len(value) == 34 and not TWILIO_CALL_SID.fullmatch(value):
        raise InvalidCallSid("looks like a Twilio call SID but is not 'CA' + 32 hex digits")
    return value


def filter_can_express(value: str) -> bool:
    """True when `name:eq:<value>` surely means equality with `value` on the list endpoint."""
    return not _UNSURE_IN_FILTER.intersection(value)


def is_twilio_call_sid(value: str) -> bool:
    """True for the Twilio form, `CA` + 32 hex digits (SIP-trunk call ids take other forms)."""
    return TWILIO_CALL_SID.fullmatch(value) is not None
