"""ElevenLabs post-call webhooks: verify, parse, and learn call SID → conversation mappings.

Framework-free: `parse_webhook` takes the raw body bytes and the request headers, checks the
`ElevenLabs-Signature` header, and returns a typed `WebhookEvent`; `mapping_from_webhook` and
`mapping_from_outbound_call` give the call SID → conversation mapping to hand to
`resolver.remember(*learned)`; `MemoryDedupe`/`RedisDedupe` drop a delivery seen before. The
errors (`WebhookError` and its subclasses) are imported from `callsid_resolver` with the rest
of the error tree (drawn in `_exceptions`). See docs/webhooks.md.
"""

from __future__ import annotations

from ._async.redis_dedupe import AsyncRedisDedupe
from ._sync.redis_dedupe import RedisDedupe
from ._webhook_dedupe import MemoryDedupe, delivery_key
from ._webhook_events import (
    CallInitiationFailure,
    FailureMetadata,
    LearnedMapping,
    PostCallAudio,
    PostCallTranscriptionOtel,
    WebhookEvent,
    mapping_from_outbound_call,
    mapping_from_webhook,
    parse_webhook,
)
from ._webhook_signature import SIGNATURE_HEADER, verify_signature

__all__ = [
    "SIGNATURE_HEADER",
    "AsyncRedisDedupe",
    "CallInitiationFailure",
    "FailureMetadata",
    "LearnedMapping",
    "MemoryDedupe",
    "PostCallAudio",
    "PostCallTranscriptionOtel",
    "RedisDedupe",
    "WebhookEvent",
    "delivery_key",
    "mapping_from_outbound_call",
    "mapping_from_webhook",
    "parse_webhook",
    "verify_signature",
]
