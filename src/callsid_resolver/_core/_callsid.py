"""Validation of call SIDs, before any I/O."""

from __future__ import annotations

import re

from .._exceptions import InvalidCallSid

# Twilio call SIDs are "CA" + 32 hex digits; SIP trunks carry other ids (UUIDs, X-CALL-ID header
# values), so the Twilio form is recognised, not required.
TWILIO_CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
MAX_LENGTH = 256
# The list endpoint's filter is `name:op:value`, `|` separating `in` values: a SID holding either
# character cannot be expressed there, and no carrier issues one.
_FORBIDDEN = frozenset(":|")


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
        if ch in _FORBIDDEN:
            raise InvalidCallSid(f"contains {ch!r}, which no carrier's call id holds")
    if value.startswith("CA") and len(value) == 34 and not TWILIO_CALL_SID.fullmatch(value):
        raise InvalidCallSid("looks like a Twilio call SID but is not 'CA' + 32 hex digits")
    return value


def is_twilio_call_sid(value: str) -> bool:
    """True for the Twilio form, `CA` + 32 hex digits (SIP-trunk call ids take other forms)."""
    return TWILIO_CALL_SID.fullmatch(value) is not None
