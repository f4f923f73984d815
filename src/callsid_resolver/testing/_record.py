"""`callsid-resolver record`: capture real conversations into a recording, scrubbed.

The API key travels only in the request header and is never written (any copy of it inside a
payload is masked too); phone numbers are replaced by fake `+1555…` numbers (the same real number
always maps to the same fake one, so a recording keeps who-called-whom); signed-URL signatures,
anything that looks like an ElevenLabs key (`sk_…`) and the values of secret-looking keys (headers
such as `xi-api-key` or `Authorization` in webhook tool calls) are masked.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import httpx

from ._recordings import FORMAT

_PHONE = re.compile(r"\+\d{7,15}")
_SIGNATURE = re.compile(r"(conversation_signature|token)=[^&\s\"']+")
_KEY = re.compile(r"\bsk_[A-Za-z0-9]{16,}\b")
_SECRET_NAME = re.compile(r"api[-_]?key|authorization|secret|password|signature|token", re.I)
SCRUBBED = "SCRUBBED"


def scrub_conversation(
    conversation: dict[str, Any], *, secrets: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A copy with phone numbers faked and signatures, keys and `secrets` masked everywhere."""
    scrubbed: dict[str, Any] = _scrub(conversation, tuple(s for s in secrets if s))
    return scrubbed


def _scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {
            k: SCRUBBED
            if isinstance(v, str) and v and _SECRET_NAME.search(k)
            else _scrub(v, secrets)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, SCRUBBED)
        value = _PHONE.sub(_fake_number, value)
        value = _SIGNATURE.sub(lambda m: f"{m.group(1)}={SCRUBBED}", value)
        return _KEY.sub(f"sk_{SCRUBBED}", value)
    return value


def _fake_number(match: re.Match[str]) -> str:
    digest = int(hashlib.sha256(match.group(0).encode()).hexdigest(), 16)
    return f"+1555{digest % 10**7:07d}"


def record_conversations(
    base_url: str,
    api_key: str,
    out_path: str | Path,
    *,
    agent_id: str | None = None,
    limit: int = 50,
    transport: httpx.BaseTransport | None = None,
) -> Path:
    """List up to `limit` conversations (newest first), fetch each, write a scrubbed recording
    (format 1, see `_recordings`) to `out_path`; `transport` lets a test record an emulator."""
    conversations: list[dict[str, Any]] = []
    params: dict[str, Any] = {"page_size": min(limit, 100)}
    if agent_id:
        params["agent_id"] = agent_id
    with httpx.Client(
        base_url=base_url, headers={"xi-api-key": api_key}, timeout=30, transport=transport
    ) as http:
        while len(conversations) < limit:
            page = http.get("/v1/convai/conversations", params=params)
            page.raise_for_status()
            body = page.json()
            for row in body["conversations"][: limit - len(conversations)]:
                one = http.get(f"/v1/convai/conversations/{row['conversation_id']}")
                one.raise_for_status()
                conversations.append(scrub_conversation(one.json(), secrets=(api_key,)))
            if not body.get("has_more") or not body.get("next_cursor"):
                break
            params["cursor"] = body["next_cursor"]
    path = Path(out_path)
    document = {
        "format": FORMAT,
        "description": f"Recorded from {httpx.URL(base_url).host}, scrubbed",
        "conversations": conversations,
    }
    path.write_text(json.dumps(document, indent=1) + "\n")
    return path
