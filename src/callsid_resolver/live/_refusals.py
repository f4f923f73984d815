"""How the monitoring socket says no: EVERY assumption about it lives in this module.

The requirements are documented (docs/protocol.md §11, §12): an Enterprise plan or the
`realtime-monitoring` feature flag, a key with the `CONVAI_WRITE` ("ElevenLabs Agents Write")
scope, EDITOR access to the workspace, `monitoring_enabled` on the agent, and a conversation that
has begun. How a refusal looks on the wire is UNCONFIRMED, and whether commands are acknowledged.
What we assume, in one place:

1. A refusal arrives either as an HTTP status on the handshake (401, 403, 404, ...) or as a close
   frame right after the handshake, code 1008 (policy violation, the code the agent socket uses
   for auth and validation failures) with a reason text. The local emulator refuses the second way
   with reasons `"<kind>: <text>"`, kinds `plan`, `scope`, `role`, `monitoring_disabled`,
   `not_started`, `conversation_over`, and answers a missing or wrong key with HTTP 403.
2. The kind is read from the reason (or the handshake body): first an exact `<kind>:` prefix, then
   keywords, so a differently worded real reason still maps to the right class.
3. A refusal close comes within `SETTLE_SECONDS` of the handshake; a socket still open then (or
   one that has sent any event, such as the documented `connected`) was accepted.
4. Commands are never acknowledged: a command counts as delivered once the server's WebSocket
   layer has answered a protocol ping sent after it.
5. A normal close (1000) or a going-away (1001) after we were accepted means the call ended; after
   `end_call` it is the command's success, even if it beat the confirming pong.
6. Plan, scope and role refusals concern the key or the workspace, not the conversation; they are
   remembered for `ACCOUNT_REFUSAL_TTL` seconds so a sender does not pay a handshake per message.
"""

from __future__ import annotations

import json

from ._errors import (
    ConversationNotStarted,
    ConversationOver,
    MonitoringDisabled,
    MonitorPlanRequired,
    MonitorRefused,
    MonitorRoleMissing,
    MonitorScopeMissing,
)

__all__ = [
    "ACCOUNT_REFUSAL_TTL",
    "ACCOUNT_WIDE",
    "ENDED_CODES",
    "SETTLE_SECONDS",
    "classify",
    "refusal_from_close",
    "refusal_from_status",
]

SETTLE_SECONDS = 0.3
ACCOUNT_REFUSAL_TTL = 60.0
POLICY_VIOLATION = 1008
ENDED_CODES = frozenset({1000, 1001})

_BY_KIND: dict[str, type[MonitorRefused]] = {
    "plan": MonitorPlanRequired,
    "scope": MonitorScopeMissing,
    "role": MonitorRoleMissing,
    "monitoring_disabled": MonitoringDisabled,
    "not_started": ConversationNotStarted,
    "conversation_over": ConversationOver,
}
ACCOUNT_WIDE = frozenset({"plan", "scope", "role"})

# Keyword fallbacks, checked in order, for reasons worded differently from the emulator's.
_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("plan", ("enterprise", "plan", "subscription", "tier", "feature flag", "realtime-monitoring")),
    ("scope", ("scope", "convai_write", "permission")),
    ("role", ("editor", "role")),
    ("monitoring_disabled", ("monitoring",)),
    ("not_started", ("not begun", "not started", "not yet", "initiated")),
    ("conversation_over", ("not active", "ended", "over", "finished", "not found", "no such")),
)

# Handshake statuses whose meaning does not depend on a text.
_STATUS_KIND = {401: "unauthorized", 404: "conversation_over", 410: "conversation_over"}


def classify(text: str) -> str | None:
    """The refusal kind a reason text names, or None."""
    lowered = text.strip().lower()
    prefix, sep, _ = lowered.partition(":")
    if sep and prefix.strip() in _BY_KIND:
        return prefix.strip()
    for kind, words in _KEYWORDS:
        if any(word in lowered for word in words):
            return kind
    return None


def refusal_from_status(conversation_id: str, status: int, body: bytes = b"") -> MonitorRefused:
    """The error for a handshake answered with HTTP `status` instead of 101."""
    detail = _body_text(body)
    kind = classify(detail) if detail else None
    kind = kind or _STATUS_KIND.get(status) or ("forbidden" if status == 403 else "refused")
    cls = _BY_KIND.get(kind, MonitorRefused)
    return cls(conversation_id, refusal=kind, detail=detail, status_code=status)


def refusal_from_close(
    conversation_id: str, code: int | None, reason: str
) -> MonitorRefused | None:
    """The error for a close frame, or None when the close is not a refusal (a network drop).

    Called for a close during the settle window (a refusal) and for a close later on (the call
    ended, or the server gave up on us).
    """
    if code in ENDED_CODES:
        detail = reason or "the server closed the monitor socket"
        return ConversationOver(conversation_id, detail=detail, close_code=code)
    if code != POLICY_VIOLATION:
        return None
    kind = classify(reason) or "policy"
    cls = _BY_KIND.get(kind, MonitorRefused)
    return cls(conversation_id, refusal=kind, detail=reason, close_code=code)


def _body_text(body: bytes) -> str:
    """The API's `detail` message from a refused handshake's body, if it has one."""
    if not body:
        return ""
    text = body.decode("utf-8", "replace")[:300]
    try:
        detail = json.loads(text).get("detail")
    except (ValueError, AttributeError):
        return text.strip()
    if isinstance(detail, dict):
        parts = [str(detail.get(k)) for k in ("status", "message") if detail.get(k)]
        return ": ".join(parts)
    return str(detail) if detail else ""
