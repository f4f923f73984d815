"""`callsid-resolver record`: capture real conversations into a recording, scrubbed.

The API key travels only in the request header and is never written: a copy of it inside a
payload, as a whole value or a whole word of a text, is masked too, while identifiers are left
alone (a short key such as `fake` must never turn `conv_fake0…` into `conv_SCRUBBED0…`). Phone
numbers become fake `+1555…` numbers (the same real number always maps to the same fake one, so
a recording keeps who-called-whom); signed-URL signatures, anything that looks like an
ElevenLabs key (`sk_…`) and the values of secret-looking keys (headers such as `xi-api-key` or
`Authorization` in webhook tool calls) are masked.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from .._exceptions import TransportError, error_class_for
from ._recordings import FORMAT

__all__ = ["SCRUBBED", "record_conversations", "scrub_conversation"]

_PHONE = re.compile(r"\+\d{7,15}")
_SIGNATURE = re.compile(r"(conversation_signature|token)=[^&\s\"']+")
_KEY = re.compile(r"\bsk_[A-Za-z0-9]{16,}\b")
_SECRET_NAME = re.compile(r"api[-_]?key|authorization|secret|password|signature|token", re.I)
# Identifiers (`conversation_id`, `call_sid`, `agent_id`, ...) are never secrets, and a secret
# that happens to be a substring of one must not corrupt it.
_ID_NAME = re.compile(r"(^|_)(id|ids|sid)$", re.I)
SCRUBBED = "SCRUBBED"


def scrub_conversation(
    conversation: dict[str, Any], *, secrets: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A scrubbed copy of one GET-conversation object.

    Phone numbers become consistent fake `+1555…` numbers; signed-URL signatures, `sk_…` keys and
    the values of secret-looking fields (`xi-api-key`, `Authorization`, `token`, ...) are masked;
    each of `secrets` is masked where it is a whole value or a whole word of a text, never inside
    an identifier (a field named `id`, `*_id` or `*_sid`).

    Args:
        conversation: the object as `GET /v1/convai/conversations/{id}` returned it.
        secrets: values to mask wherever they stand alone, typically the API key used.

    Returns:
        A new dict; `conversation` is left unchanged.
    """
    patterns = tuple(re.compile(rf"(?<![\w-]){re.escape(s)}(?![\w-])") for s in secrets if s)
    scrubbed: dict[str, Any] = _scrub(conversation, patterns, identifier=False)
    return scrubbed


def _scrub(value: Any, secrets: tuple[re.Pattern[str], ...], *, identifier: bool) -> Any:
    if isinstance(value, dict):
        return {
            k: SCRUBBED
            if isinstance(v, str) and v and _SECRET_NAME.search(k)
            else _scrub(v, secrets, identifier=bool(_ID_NAME.search(k)))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v, secrets, identifier=identifier) for v in value]
    if isinstance(value, str):
        # A phone number can sit in an `_id` field (`system__caller_id`); a key cannot.
        for secret in () if identifier else secrets:
            value = secret.sub(SCRUBBED, value)
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
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Record the `limit` most recent conversations into a scrubbed recording file.

    Lists conversations newest first (docs/protocol.md §2), fetches each one in full (§3),
    scrubs it with `scrub_conversation` (the key among the secrets) and writes format 1 (see
    `load_recording_file`). The file is written only once every conversation is in.

    Args:
        base_url: the API host, e.g. `https://api.elevenlabs.io`.
        api_key: sent as `xi-api-key`; never written.
        out_path: the recording file to write (replaced if it exists).
        agent_id: record only this agent's conversations.
        limit: how many conversations to record, at least 1.
        transport: an httpx transport, e.g. an emulator's, to record without a network.
        progress: called as `progress(recorded, limit)` after each conversation.

    Returns:
        The path written.

    Raises:
        ValueError: `limit` is below 1.
        ApiError: the API answered an error status (`AuthenticationFailed` for a bad key).
        TransportError: the API could not be reached.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    conversations: list[dict[str, Any]] = []
    params: dict[str, Any] = {"page_size": min(limit, 100)}
    if agent_id:
        params["agent_id"] = agent_id
    with httpx.Client(
        base_url=base_url, headers={"xi-api-key": api_key}, timeout=30, transport=transport
    ) as http:
        while len(conversations) < limit:
            body = _get(http, "/v1/convai/conversations", params)
            for row in body["conversations"][: limit - len(conversations)]:
                one = _get(http, f"/v1/convai/conversations/{row['conversation_id']}", {})
                conversations.append(scrub_conversation(one, secrets=(api_key,)))
                if progress is not None:
                    progress(len(conversations), limit)
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


def _get(http: httpx.Client, path: str, params: dict[str, Any]) -> Any:
    """The JSON body, or the library's error for the status (docs/protocol.md §10)."""
    try:
        response = http.get(path, params=params)
    except httpx.TransportError as exc:
        raise TransportError(
            str(exc) or type(exc).__name__, method="GET", path=path, attempts=1
        ) from None
    if not response.is_success:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text[:200] or None
        raise error_class_for(response.status_code)(
            status_code=response.status_code, method="GET", path=path, detail=detail
        )
    return response.json()
