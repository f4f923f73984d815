"""Resolve a phone call's SID to its ElevenLabs Agents conversation, and reach the live call.

```python
from callsid_resolver import CallSidResolver, ElevenLabsClient, MemoryCache

resolver = CallSidResolver(ElevenLabsClient(), cache=MemoryCache(maxsize=100_000, ttl=3600))
resolution = resolver.resolve("CA0123456789abcdef0123456789abcdef", agent_id="agent_...")
resolution.conversation_id, resolution.source, resolution.requests
```

Every public name has one home. Here: the clients, resolvers, caches, models and every
exception of the library, live calls' and webhooks' included (the tree is drawn in
`callsid_resolver._exceptions`). Elsewhere: `callsid_resolver.live` (sessions, the sender,
router and mailboxes), `callsid_resolver.webhooks` (verify and parse post-call webhooks),
`callsid_resolver.testing` (the emulator) and `callsid_resolver.mcp_server` (the MCP server).
"""

from .__version__ import __version__
from ._async.client import AsyncElevenLabsClient
from ._async.redis_cache import AsyncRedisCache
from ._async.resolver import AsyncCallSidResolver
from ._async.tiered_cache import AsyncTieredCache
from ._cache import MemoryCache, NullCache
from ._client_base import DEFAULT_BASE_URL, ListFilters, validate_api_key
from ._core._api import ListQuery
from ._core._callsid import is_twilio_call_sid, validate_call_sid
from ._core._retry import RetryPolicy
from ._core._store import (
    AsyncFlightLock,
    AsyncResolutionCache,
    CachedMapping,
    FlightLock,
    ResolutionCache,
)
from ._exceptions import (
    ApiError,
    AuthenticationFailed,
    BadRequest,
    CacheUnavailable,
    CallSidResolverError,
    ConversationNotFound,
    DeadlineExceeded,
    InvalidApiKey,
    InvalidCallSid,
    InvalidConversationId,
    InvalidHint,
    MissingApiKey,
    NotFound,
    PermissionDenied,
    RateLimited,
    ResponseTooLarge,
    SearchSummary,
    ServerError,
    TransportError,
    UnexpectedResponse,
)
from ._models import (
    CallIdField,
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
from ._priming import CallRef
from ._redis_support import async_redis_client
from ._sync.client import ElevenLabsClient
from ._sync.redis_cache import RedisCache
from ._sync.resolver import CallSidResolver
from ._sync.tiered_cache import TieredCache
from ._webhook_signature import (
    InvalidSignature,
    MalformedPayload,
    MalformedSignature,
    MissingSignature,
    StaleSignature,
    WebhookArgumentError,
    WebhookError,
)
from .live._errors import (
    CallMismatch,
    ConfirmTimeout,
    ConversationNotStarted,
    ConversationOver,
    InvalidSend,
    MailboxFull,
    MailboxUnavailable,
    MonitorError,
    MonitoringDisabled,
    MonitorPlanRequired,
    MonitorRefused,
    MonitorRoleMissing,
    MonitorScopeMissing,
    MonitorUnavailable,
    NotLive,
    RouteTimeout,
    SenderError,
    SendTimeout,
    SessionClosed,
    SessionError,
    SessionOpenFailed,
)
from .live._router import NoRoute

__all__ = [
    "DEFAULT_BASE_URL",
    "ApiError",
    "AsyncCallSidResolver",
    "AsyncElevenLabsClient",
    "AsyncFlightLock",
    "AsyncRedisCache",
    "AsyncResolutionCache",
    "AsyncTieredCache",
    "AuthenticationFailed",
    "BadRequest",
    "CacheUnavailable",
    "CachedMapping",
    "CallIdField",
    "CallMismatch",
    "CallRef",
    "CallSidResolver",
    "CallSidResolverError",
    "ConfirmTimeout",
    "Conversation",
    "ConversationInitiationClientData",
    "ConversationMetadata",
    "ConversationNotFound",
    "ConversationNotStarted",
    "ConversationOver",
    "ConversationSummary",
    "ConversationsPage",
    "DeadlineExceeded",
    "ElevenLabsClient",
    "FlightLock",
    "InvalidApiKey",
    "InvalidCallSid",
    "InvalidConversationId",
    "InvalidHint",
    "InvalidSend",
    "InvalidSignature",
    "ListFilters",
    "ListQuery",
    "MailboxFull",
    "MailboxUnavailable",
    "MalformedPayload",
    "MalformedSignature",
    "MemoryCache",
    "MissingApiKey",
    "MissingSignature",
    "MonitorError",
    "MonitorPlanRequired",
    "MonitorRefused",
    "MonitorRoleMissing",
    "MonitorScopeMissing",
    "MonitorUnavailable",
    "MonitoringDisabled",
    "NoRoute",
    "NotFound",
    "NotLive",
    "NullCache",
    "PermissionDenied",
    "PhoneCall",
    "RateLimited",
    "RedisCache",
    "Resolution",
    "ResolutionCache",
    "ResolutionSource",
    "ResponseTooLarge",
    "RetryPolicy",
    "RouteTimeout",
    "SearchSummary",
    "SendTimeout",
    "SenderError",
    "ServerError",
    "SessionClosed",
    "SessionError",
    "SessionOpenFailed",
    "SignedUrl",
    "StaleSignature",
    "TieredCache",
    "TranscriptEntry",
    "TransportError",
    "UnexpectedResponse",
    "WebhookArgumentError",
    "WebhookError",
    "__version__",
    "async_redis_client",
    "is_twilio_call_sid",
    "validate_api_key",
    "validate_call_sid",
]
