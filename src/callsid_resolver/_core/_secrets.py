"""Keeping secrets out of what users see: scrubbing of echoed text, URLs and phone numbers.

An error message or a repr ends up in logs, tracebacks and bug reports, so none may hold the API
key, the password of a `base_url`, or a full phone number (docs/protocol.md §1, §10).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import httpx

__all__ = ["MASK", "mask_phone_numbers", "redact_password", "scrub", "scrub_value"]

MASK = "***"
# A secret shorter than this is not searched for in echoed text: it would mask ordinary words.
_MIN_SECRET = 6
# How deep an echoed JSON detail is walked; deeper parts are dropped, not searched.
_MAX_DEPTH = 8
# A phone number standing alone: 7 to 15 digits (E.164), not glued to letters or other digits, so
# a Twilio SID ("CA" + hex) or a UUID is never taken for one.
_PHONE = re.compile(r"(?<![0-9A-Za-z])\+?\d{7,15}(?![0-9A-Za-z])")


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret replaced by `***`."""
    for secret in secrets:
        if len(secret) >= _MIN_SECRET and secret in text:
            text = text.replace(secret, MASK)
    return text


def scrub_value(value: Any, secrets: tuple[str, ...], depth: int = 0) -> Any:
    """A decoded JSON value with the secrets scrubbed from every string in it (keys too)."""
    if isinstance(value, str):
        return scrub(value, secrets)
    if depth >= _MAX_DEPTH:
        return None if isinstance(value, dict | list) else value
    if isinstance(value, dict):
        return {
            scrub(str(k), secrets): scrub_value(v, secrets, depth + 1) for k, v in value.items()
        }
    if isinstance(value, list):
        return [scrub_value(v, secrets, depth + 1) for v in value]
    return value


def mask_phone_numbers(text: str) -> str:
    """`text` with each standalone phone number reduced to its last 4 digits (`+*******4567`)."""
    return _PHONE.sub(lambda m: _mask_digits(m.group()), text)


def _mask_digits(number: str) -> str:
    plus = "+" if number.startswith("+") else ""
    digits = number.lstrip("+")
    return plus + "*" * (len(digits) - 4) + digits[-4:]


def redact_password(url: str | httpx.URL) -> str:
    """The URL with the password of its user-info (if any) replaced by `***`."""
    parsed = httpx.URL(url) if isinstance(url, str) else url
    if parsed.password:
        parsed = parsed.copy_with(username=parsed.username, password=MASK)
    return str(parsed)
