"""Resolve a phone call's SID to its ElevenLabs Agents conversation, and reach the live call.

```python
from callsid_resolver import CallSidResolver, ElevenLabsClient, MemoryCache

resolver = CallSidResolver(ElevenLabsClient(), cache=MemoryCache(maxsize=100_000, ttl=3600))
resolution = resolver.resolve("CA0123456789abcdef0123456789abcdef", agent_id="agent_...")
resolution.conversation_id, resolution.source, resolution.requests
```
"""

from .__version__ import __version__
from ._cache import (
    AsyncResolutionCache,
    CachedMapping,
    CacheKeys,
    MemoryCache,
    NullCache,
    ResolutionCache,
    SharedFlight,
)
from ._client import DEFAULT_BASE_URL, AsyncElevenLabsClient, ElevenLabsClient, ListFilters
from ._core._api import ListQuery
from ._core._callsid import is_twilio_call_sid, validate_call_sid
from ._core._retry import RetryPolicy
from ._exceptions import (
    ApiError,
    AuthenticationFailed,
    BadRequest,
    CallSidResolverError,
    ConversationNotFound,
    DeadlineExceeded,
    InvalidCallSid,
    MissingApiKey,
    NotFound,
    PermissionDenied,
    RateLimited,
    SearchSummary,
    ServerError,
    TransportError,
    UnexpectedResponse,
)
from ._models import (
    Conversation,
    ConversationInitiationClientData,
    ConversationMetadata,
    ConversationsPage,
    ConversationSummary,
    PhoneCall,
    Resolution,
    ResolutionSource,
    SignedUrl,
    TranscriptEntry,
)
from ._redis import AsyncRedisCache, AsyncTieredCache, RedisCache, TieredCache
from ._resolver import AsyncCallSidResolver, CallSidResolver
from .webhooks import (
    SIGNATURE_HEADER,
    CallInitiationFailure,
    FailureMetadata,
    InvalidSignature,
    LearnedMapping,
    MalformedPayload,
    MalformedSignature,
    MissingSignature,
    PostCallAudio,
    StaleSignature,
    WebhookError,
    WebhookEvent,
    aprime_from_outbound_call,
    aprime_from_webhook,
    mapping_from_outbound_call,
    mapping_from_webhook,
    parse_webhook,
    prime_from_outbound_call,
    prime_from_webhook,
    verify_signature,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "SIGNATURE_HEADER",
    "ApiError",
    "AsyncCallSidResolver",
    "AsyncElevenLabsClient",
    "AsyncRedisCache",
    "AsyncResolutionCache",
    "AsyncTieredCache",
    "AuthenticationFailed",
    "BadRequest",
    "CacheKeys",
    "CachedMapping",
    "CallInitiationFailure",
    "CallSidResolver",
    "CallSidResolverError",
    "Conversation",
    "ConversationInitiationClientData",
    "ConversationMetadata",
    "ConversationNotFound",
    "ConversationSummary",
    "ConversationsPage",
    "DeadlineExceeded",
    "ElevenLabsClient",
    "FailureMetadata",
    "InvalidCallSid",
    "InvalidSignature",
    "LearnedMapping",
    "ListFilters",
    "ListQuery",
    "MalformedPayload",
    "MalformedSignature",
    "MemoryCache",
    "MissingApiKey",
    "MissingSignature",
    "NotFound",
    "NullCache",
    "PermissionDenied",
    "PhoneCall",
    "PostCallAudio",
    "RateLimited",
    "RedisCache",
    "Resolution",
    "ResolutionCache",
    "ResolutionSource",
    "RetryPolicy",
    "SearchSummary",
    "ServerError",
    "SharedFlight",
    "SignedUrl",
    "StaleSignature",
    "TieredCache",
    "TranscriptEntry",
    "TransportError",
    "UnexpectedResponse",
    "WebhookError",
    "WebhookEvent",
    "__version__",
    "aprime_from_outbound_call",
    "aprime_from_webhook",
    "is_twilio_call_sid",
    "mapping_from_outbound_call",
    "mapping_from_webhook",
    "parse_webhook",
    "prime_from_outbound_call",
    "prime_from_webhook",
    "validate_call_sid",
    "verify_signature",
]
