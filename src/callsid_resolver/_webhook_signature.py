"""Verifying the `ElevenLabs-Signature` of a webhook delivery, and the errors of `webhooks`.

Public through `callsid_resolver.webhooks` (the errors through `callsid_resolver`). It takes
untrusted bytes and headers from whatever web framework the user runs, so it checks their types
too, and refuses anything it cannot check with a `WebhookError`, not a raw `TypeError`. Sources:
the post-call webhooks docs and SDK `webhooks_custom.py:construct_event` (docs/protocol.md §9).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from ._exceptions import CallSidResolverError

__all__ = [
    "MAX_BODY",
    "SIGNATURE_HEADER",
    "Body",
    "HeaderValue",
    "Headers",
    "InvalidSignature",
    "MalformedPayload",
    "MalformedSignature",
    "MissingSignature",
    "StaleSignature",
    "WebhookArgumentError",
    "WebhookError",
    "body_bytes",
    "find_header",
    "verify_signature",
]

SIGNATURE_HEADER = "ElevenLabs-Signature"
_V0 = re.compile(r"[0-9a-fA-F]{64}")  # a hex SHA-256 digest
_UNIX = re.compile(r"[0-9]{1,15}")  # int() would also take "+1", " 1", "1_0" and 4,000 digits
# Bodies are decoded with bounds (see `_json`): a post_call_audio body holds a whole call as
# base64 MP3, so the size bound is generous; no envelope is nested anywhere near 64 levels.
MAX_BODY = 256 * 2**20

Body: TypeAlias = "bytes | bytearray | memoryview | str"
HeaderValue: TypeAlias = "str | bytes | Sequence[str | bytes]"
Headers: TypeAlias = "Mapping[str, HeaderValue] | Mapping[bytes, HeaderValue]"


class WebhookError(CallSidResolverError):
    """A webhook request that must not be trusted or could not be read."""


class MissingSignature(WebhookError):
    """The request carries no `ElevenLabs-Signature` header."""


class MalformedSignature(WebhookError):
    """The header is not `t=<unix seconds>,v0=<hex>` (the value itself is not echoed)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"malformed {SIGNATURE_HEADER} header: {reason}")


class StaleSignature(WebhookError):
    """A correct signature whose `t` is outside the window: `age` is negative for the future."""

    def __init__(self, age: float, limit: float) -> None:
        self.age = age
        self.limit = limit
        when = f"{age:.0f}s old" if age > 0 else f"{-age:.0f}s in the future"
        super().__init__(f"signature timestamp is {when}, beyond the {limit:.0f}s allowed")


class InvalidSignature(WebhookError):
    """No `v0` entry matches the body: the secret is wrong or the body was altered."""


class WebhookArgumentError(WebhookError, ValueError):
    """An argument no delivery could be checked with (`parameter` names it); a `ValueError` too."""

    def __init__(self, parameter: str, reason: str) -> None:
        self.parameter = parameter
        super().__init__(f"{parameter}: {reason}")


class MalformedPayload(WebhookError):
    """Authentic, but not a webhook envelope; `errors` are `(location, message)`, no input."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        shown = "; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in errors[:5])
        super().__init__(f"signed webhook body is not a valid event: {shown}")


def verify_signature(
    body: Body,
    signature_header: HeaderValue | None,
    secret: str,
    *,
    tolerance: float = 1800,
    max_future_skew: float = 300,
    now: float | None = None,
) -> None:
    """Check `ElevenLabs-Signature: t=<unix>,v0=<hex HMAC-SHA256(secret, "<t>.<body>")>` against
    `body`, the bytes exactly as received. Any one of several `v0` entries may match (key rotation).

    `body` may be `bytes`, `bytearray`, `memoryview` or a `str` (encoded as UTF-8: right only if
    the framework decoded the bytes as UTF-8 without changing them). The header value may be
    `str` or `bytes`, or a one-element list of them (frameworks that keep repeated headers).
    Raises a `WebhookError` subclass; `WebhookArgumentError` (also a `ValueError`) for an empty
    secret, or a `tolerance`, `max_future_skew` or `now` that is not a finite number (a NaN
    tolerance would accept any age)."""
    raw = body_bytes(body)
    key = _secret_bytes(secret)
    tolerance = _finite("tolerance", tolerance, minimum=0)
    max_future_skew = _finite("max_future_skew", max_future_skew, minimum=0)
    clock = time.time() if now is None else _finite("now", now)
    timestamp, candidates = _parse_header(signature_header)
    expected = _signature_digest(raw, timestamp, key)
    # The digest is checked before the clock, so a StaleSignature always means "authentic but
    # late" (clock skew, a slow queue, a replay) and never hides a forgery.
    if not any(hmac.compare_digest(expected, c.lower()) for c in candidates):
        raise InvalidSignature(f"none of {len(candidates)} v0 signature(s) matches body and secret")
    age = clock - timestamp
    if age > tolerance:
        raise StaleSignature(age, tolerance)
    # The SDK only rejects old timestamps. Bounding the future too keeps the replay window finite
    # (a replay store needs to keep signatures for tolerance + skew only) and makes a sender or
    # receiver with a wrong clock fail loudly instead of being accepted for the clock's error.
    if -age > max_future_skew:
        raise StaleSignature(age, max_future_skew)


def body_bytes(body: object) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        try:
            return body.encode()
        except UnicodeEncodeError:  # lone surrogates: no UTF-8 body decodes to that
            raise WebhookArgumentError("body", "a str body that is not valid text") from None
    raise WebhookArgumentError("body", f"expected the raw bytes, got {type(body).__name__}")


def _secret_bytes(secret: object) -> bytes:
    if isinstance(secret, bytes) and secret:
        return secret
    if not isinstance(secret, str):
        raise WebhookArgumentError("secret", f"expected a str, got {type(secret).__name__}")
    if not secret:
        raise WebhookArgumentError("secret", "the webhook secret is empty")
    try:
        return secret.encode()
    except UnicodeEncodeError:
        raise WebhookArgumentError("secret", "the secret is not valid text") from None


def _finite(name: str, value: object, *, minimum: float | None = None) -> float:
    # bool is an int: `tolerance=True` is a mistake, not one second.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WebhookArgumentError(name, f"expected a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise WebhookArgumentError(name, "must be a finite number")
    if minimum is not None and number < minimum:
        raise WebhookArgumentError(name, f"must be at least {minimum:g}")
    return number


def _signature_digest(body: bytes, timestamp: int, secret: str | bytes) -> str:
    """The `v0` of a delivery: hex HMAC-SHA256 of `"<t>.<body>"` keyed with the secret, over
    the body's bytes as received (no decode/re-encode). (`testing.sign_webhook` computes
    it on its own, so that tests check one against the other.)"""
    signed = f"{timestamp}.".encode() + body
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, signed, hashlib.sha256).hexdigest()


def _header_text(value: object) -> str | None:
    """One header value as text; None when absent. Anything else is a `MalformedSignature`."""
    if isinstance(value, (list, tuple)):
        if len(value) > 1:
            raise MalformedSignature(f"{len(value)} {SIGNATURE_HEADER} headers, expected one")
        value = value[0] if value else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise MalformedSignature("the header is not ASCII") from None
    raise MalformedSignature(f"the header value is a {type(value).__name__}, not text")


def _parse_header(header: object) -> tuple[int, list[str]]:
    value = _header_text(header)
    if value is None or not value.strip():
        raise MissingSignature(f"no {SIGNATURE_HEADER} header")
    entries = [part.partition("=") for part in "".join(value.split()).split(",") if part]
    if not all(eq for _, eq, _ in entries):
        raise MalformedSignature("an entry is not key=value")
    timestamps = [item for key, _, item in entries if key == "t"]
    # Other schemes (a future v1=...) are ignored, so adding one does not break verification.
    candidates = [item for key, _, item in entries if key == "v0"]
    if not all(_V0.fullmatch(c) for c in candidates):
        raise MalformedSignature("a v0 entry is not 64 hex digits")
    if len(timestamps) != 1:
        raise MalformedSignature("expected exactly one t= entry")
    if not _UNIX.fullmatch(timestamps[0]):
        raise MalformedSignature("t is not a unix time in whole seconds")
    if not candidates:
        raise MalformedSignature("no v0= signature")
    return int(timestamps[0]), candidates


def find_header(headers: Mapping[Any, Any]) -> Any:
    """The `ElevenLabs-Signature` value in a request's headers, or None."""
    # Starlette's and httpx's headers are case-insensitive already; a plain dict is not, and an
    # ASGI-style mapping has bytes names.
    wanted = SIGNATURE_HEADER.lower()
    for name, value in headers.items():
        if isinstance(name, (bytes, bytearray)):
            name = bytes(name).decode("latin-1")
        if isinstance(name, str) and name.lower() == wanted:
            return value
    return None
