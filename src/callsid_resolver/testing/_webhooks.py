"""Sign a webhook delivery the way ElevenLabs does, to test your endpoint offline."""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["sign_webhook"]


def sign_webhook(body: bytes | str, secret: str | bytes, *, timestamp: int | None = None) -> str:
    """The `ElevenLabs-Signature` header value ElevenLabs would send with `body`.

    `t=<unix seconds>,v0=<hex HMAC-SHA256 of "<t>.<body>" keyed with secret>` (docs/protocol.md §9);
    `timestamp` defaults to now; `secret` is text or bytes, as `verify_signature` takes it. Post
    `body` byte for byte with this header.
    """
    if not secret:
        raise ValueError("the webhook secret is empty")
    raw = body.encode() if isinstance(body, str) else body
    t = int(time.time()) if timestamp is None else timestamp
    # Computed here rather than with the library's verifier, so a test checks one against the
    # other instead of against itself.
    key = secret if isinstance(secret, bytes) else secret.encode()
    digest = hmac.new(key, f"{t}.".encode() + raw, hashlib.sha256).hexdigest()
    return f"t={t},v0={digest}"
