"""Signed URLs and conversation tokens (docs/protocol.md §5): issued by the HTTP side, checked
again by the agent socket. A token is claims (agent, expiry) and their HMAC under the
emulator's signing key; it expires `signed_url_ttl` seconds after it was issued, on `clock`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from ._state import EmulatorState

__all__ = ["check_signature", "sign"]


def sign(state: EmulatorState, agent_id: str) -> str:
    """A `conversation_signature` valid for `agent_id` from now for `signed_url_ttl` seconds."""
    expiry = state.clock() + state.settings.signed_url_ttl
    claims = json.dumps({"agent_id": agent_id, "exp": expiry})
    payload = base64.urlsafe_b64encode(claims.encode()).decode().rstrip("=")
    mac = hmac.new(state.signing_key, payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}.{mac}"


def check_signature(state: EmulatorState, agent_id: str, token: str) -> str | None:
    """None when `token` lets `agent_id` start a conversation now, else why not."""
    payload, _, mac = token.partition(".")
    good = hmac.new(state.signing_key, payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(good, mac):
        return "invalid signature"
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    if claims["agent_id"] != agent_id:
        return "signature is for another agent"
    return "signature expired" if claims["exp"] < state.clock() else None
