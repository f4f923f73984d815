"""Deliver data into the live conversation of a call (see docs/sending.md).

```python
from callsid_resolver.live import MemoryMailbox, MonitorChannel, Sender, SessionRegistry

sender = Sender(registry=registry, monitor=MonitorChannel(client, resolver=resolver),
                mailbox=MemoryMailbox())
receipt = await sender.send_contextual_update("CRM: open ticket #4711", call_sid=call_sid)
receipt.channel  # "session", "monitor" or "mailbox"
```

`websockets` (>= 13) is needed for sessions and the monitor channel, and imported only when a
socket opens; the mailboxes need nothing (Redis: `callsid-resolver[redis]`, also for the
`RedisRouter` that reaches sessions held by other workers of a fleet).
"""

from ._mailbox import Mailbox, MemoryMailbox, RedisMailbox, RunMailbox
from ._monitor import MonitorChannel
from ._monitor_socket import MonitorEventHandler, MonitorStats
from ._protocol import (
    AgentResponse,
    AgentResponseCorrection,
    AgentToolResponse,
    Audio,
    ClientEvent,
    ClientToolCall,
    ClientToolResult,
    ContextualUpdate,
    ConversationInitiation,
    ConversationInitiationMetadata,
    ErrorEvent,
    Interruption,
    MonitorCommand,
    Ping,
    Pong,
    ServerEvent,
    TentativeUserTranscript,
    UnknownEvent,
    UserActivity,
    UserMessage,
    UserTranscript,
    VadScore,
    parse_server_event,
)
from ._records import CHANNELS, Channel, Receipt
from ._registry import RegistryListener, SessionRegistry
from ._router import RedisRouter
from ._sender import Sender
from ._session import ConversationSession, ToolHandler

__all__ = [
    "CHANNELS",
    "AgentResponse",
    "AgentResponseCorrection",
    "AgentToolResponse",
    "Audio",
    "Channel",
    "ClientEvent",
    "ClientToolCall",
    "ClientToolResult",
    "ContextualUpdate",
    "ConversationInitiation",
    "ConversationInitiationMetadata",
    "ConversationSession",
    "ErrorEvent",
    "Interruption",
    "Mailbox",
    "MemoryMailbox",
    "MonitorChannel",
    "MonitorCommand",
    "MonitorEventHandler",
    "MonitorStats",
    "Ping",
    "Pong",
    "Receipt",
    "RedisMailbox",
    "RedisRouter",
    "RegistryListener",
    "RunMailbox",
    "Sender",
    "ServerEvent",
    "SessionRegistry",
    "TentativeUserTranscript",
    "ToolHandler",
    "UnknownEvent",
    "UserActivity",
    "UserMessage",
    "UserTranscript",
    "VadScore",
    "parse_server_event",
]
