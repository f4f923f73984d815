"""The Agents WebSocket and the monitoring socket as data: no I/O here.

Client events are pydantic models that encode to the JSON the server expects
(docs/protocol.md §8, `agent.asyncapi.yaml`); server events are decoded into typed models, and a
type we do not know (or a known type in a shape we do not expect) becomes an `UnknownEvent`
carrying the raw message: the API adds events often, and a new one must never break a live call.
Monitor commands follow the realtime-monitoring guide (docs/protocol.md §11).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._json import loads_bounded

__all__ = [
    "SHOWN_PARAMS",
    "AgentResponse",
    "AgentResponseCorrection",
    "AgentToolResponse",
    "Audio",
    "ClientEvent",
    "ClientToolCall",
    "ClientToolResult",
    "ContextualUpdate",
    "ConversationInitiation",
    "ConversationInitiationMetadata",
    "ErrorEvent",
    "Interruption",
    "MonitorCommand",
    "Ping",
    "Pong",
    "ServerEvent",
    "TentativeUserTranscript",
    "UnknownEvent",
    "UserActivity",
    "UserMessage",
    "UserTranscript",
    "VadScore",
    "agent_url",
    "monitor_url",
    "parse_server_event",
    "redact_url",
    "tool_result_text",
    "ws_base_url",
]

AGENT_PATH = "/v1/convai/conversation"
MONITOR_PATH = "/v1/convai/conversations/{conversation_id}/monitor"
DynamicValue = str | int | float | bool
# The official SDK's max frame (audio events can be large); a longer text is not decoded.
MAX_FRAME = 16 * 2**20


# -- client → server ------------------------------------------------------------------------


class ClientEvent(BaseModel):
    """A message this library sends on the agent socket."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: str

    def to_json(self) -> str:
        # Optional fields the caller left out stay off the wire (`context_id`, overrides).
        """The event as the socket sends it, unset optional fields left out."""
        return self.model_dump_json(exclude_none=True)


class ConversationInitiation(ClientEvent):
    """`conversation_initiation_client_data`: the first message, before anything else."""

    type: Literal["conversation_initiation_client_data"] = "conversation_initiation_client_data"
    dynamic_variables: dict[str, DynamicValue] | None = None
    conversation_config_override: dict[str, Any] | None = None
    custom_llm_extra_body: dict[str, Any] | None = None
    user_id: str | None = None


class ContextualUpdate(ClientEvent):
    """Non-interrupting context for the agent; only the latest update per `context_id` stays."""

    type: Literal["contextual_update"] = "contextual_update"
    text: str
    context_id: str | None = None


class UserMessage(ClientEvent):
    """Text handled exactly like spoken user input: the agent answers it."""

    type: Literal["user_message"] = "user_message"
    text: str


class ClientToolResult(ClientEvent):
    """The answer to a `client_tool_call`; `result` is a string on the wire."""

    type: Literal["client_tool_result"] = "client_tool_result"
    tool_call_id: str
    result: str
    is_error: bool = False


class UserActivity(ClientEvent):
    """Resets the agent's turn timeout."""

    type: Literal["user_activity"] = "user_activity"


class Pong(ClientEvent):
    """The answer to a `ping`, echoing its `event_id`."""

    type: Literal["pong"] = "pong"
    event_id: int


def tool_result_text(value: Any) -> str:
    """A handler's return value as the string `client_tool_result.result` carries."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, default=str)


# -- server → client ------------------------------------------------------------------------


class ServerEvent(BaseModel):
    """A message from the agent socket; `raw` is the message as received."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    type: str
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)


class UnknownEvent(ServerEvent):
    """A type this library does not model, or a known type in an unexpected shape."""


class ConversationInitiationMetadata(ServerEvent):
    conversation_id: str
    agent_output_audio_format: str | None = None
    user_input_audio_format: str | None = None


class Ping(ServerEvent):
    event_id: int
    ping_ms: int | None = None


class ClientToolCall(ServerEvent):
    tool_name: str
    tool_call_id: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    event_id: int | None = None


class AgentResponse(ServerEvent):
    agent_response: str
    event_id: int | None = None


class AgentResponseCorrection(ServerEvent):
    original_agent_response: str
    corrected_agent_response: str
    event_id: int | None = None


class UserTranscript(ServerEvent):
    user_transcript: str
    event_id: int | None = None


class TentativeUserTranscript(UserTranscript):
    pass


class Audio(ServerEvent):
    audio_base_64: str
    event_id: int | None = None


class Interruption(ServerEvent):
    event_id: int | None = None


class VadScore(ServerEvent):
    vad_score: float


class AgentToolResponse(ServerEvent):
    tool_name: str
    tool_call_id: str
    tool_type: str | None = None
    is_error: bool = False
    is_called: bool | None = None
    event_id: int | None = None


class ErrorEvent(ServerEvent):
    code: int | None = None
    message: str | None = None
    error_type: str | None = None
    reason: str | None = None


# Every server message is `{"type": t, <wrapper>: {...}}`; the wrapper key is per type (§8).
_KNOWN: dict[str, tuple[str, type[ServerEvent]]] = {
    "conversation_initiation_metadata": (
        "conversation_initiation_metadata_event",
        ConversationInitiationMetadata,
    ),
    "ping": ("ping_event", Ping),
    "client_tool_call": ("client_tool_call", ClientToolCall),
    "agent_response": ("agent_response_event", AgentResponse),
    "agent_response_correction": ("agent_response_correction_event", AgentResponseCorrection),
    "user_transcript": ("user_transcription_event", UserTranscript),
    "tentative_user_transcript": (
        "tentative_user_transcription_event",
        TentativeUserTranscript,
    ),
    "audio": ("audio_event", Audio),
    "interruption": ("interruption_event", Interruption),
    "vad_score": ("vad_score_event", VadScore),
    "agent_tool_response": ("agent_tool_response", AgentToolResponse),
    "error": ("error_event", ErrorEvent),
}


def parse_server_event(data: str | bytes) -> ServerEvent:
    """Decode one message; never raises: whatever does not fit is an `UnknownEvent`.

    A frame longer than `MAX_FRAME` or nested deeper than 64 levels is not decoded (an
    `UnknownEvent` with the start of its text): no ElevenLabs event comes close (§8), and
    `json.loads` would recurse once per level.
    """
    try:
        message = loads_bounded(data, max_size=MAX_FRAME)
    except ValueError:
        return UnknownEvent(type="", raw={"text": _printable(data)})
    if not isinstance(message, dict):
        return UnknownEvent(type="", raw={"message": message})
    kind = message.get("type")
    if not isinstance(kind, str):
        return UnknownEvent(type="", raw=message)
    known = _KNOWN.get(kind)
    if known is None:
        return UnknownEvent(type=kind, raw=message)
    wrapper, model = known
    payload = message.get(wrapper)
    try:
        fields = dict(payload) if isinstance(payload, dict) else {}
        return model.model_validate(fields | {"type": kind, "raw": message})
    except ValidationError:
        return UnknownEvent(type=kind, raw=message)


def _printable(data: str | bytes) -> str:
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    return text[:200]


# -- monitor commands ----------------------------------------------------------------------

_PHONE = re.compile(r"\+?[0-9]{3,15}")


class MonitorCommand(BaseModel):
    """A command on `/v1/convai/conversations/{id}/monitor`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    command_type: Literal[
        "contextual_update",
        "end_call",
        "transfer_to_number",
        "enable_human_takeover",
        "send_human_message",
        "disable_human_takeover",
    ]
    parameters: dict[str, str] | None = None

    @classmethod
    def contextual_update(cls, text: str) -> MonitorCommand:
        """A command adding `text` to the agent's context."""
        return cls(command_type="contextual_update", parameters={"contextual_update": text})

    @classmethod
    def end_call(cls) -> MonitorCommand:
        """A command ending the call."""
        return cls(command_type="end_call")

    @classmethod
    def transfer_to_number(cls, phone_number: str) -> MonitorCommand:
        # The number reaches a live call's routing: refuse what is plainly not a number early.
        """A command transferring the call to `phone_number` (digits, optional leading `+`).

        Raises:
            ValueError: `phone_number` is not a phone number.
        """
        if not _PHONE.fullmatch(phone_number):
            raise ValueError("phone_number must be digits with an optional leading '+'")
        return cls(command_type="transfer_to_number", parameters={"phone_number": phone_number})

    def to_json(self) -> str:
        """The command as the monitoring socket sends it."""
        return self.model_dump_json(exclude_none=True)


# -- URLs ------------------------------------------------------------------------------------


def ws_base_url(base_url: str) -> str:
    """The WebSocket origin of a REST base URL: https→wss, http→ws, host and path kept."""
    parts = urlsplit(base_url)
    scheme = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"not an http(s) or ws(s) base URL: {redact_url(base_url)!r}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def agent_url(base_url: str, agent_id: str) -> str:
    """The public-agent socket URL (`?agent_id=`); private agents use a signed URL instead."""
    return f"{ws_base_url(base_url)}{AGENT_PATH}?{urlencode({'agent_id': agent_id})}"


def monitor_url(base_url: str, conversation_id: str) -> str:
    if not conversation_id or "/" in conversation_id or conversation_id.strip() != conversation_id:
        raise ValueError(f"not a conversation id: {conversation_id!r}")
    path = MONITOR_PATH.format(conversation_id=quote(conversation_id, safe=""))
    return ws_base_url(base_url) + path


# Query parameters safe to show; every other value (`conversation_signature`, the older `token`,
# anything the API adds) is masked, because a signed URL is a credential for 15 minutes.
SHOWN_PARAMS = frozenset({"agent_id", "source", "version", "environment", "branch_id"})


def redact_url(url: str) -> str:
    """`url` fit for a log, repr or exception: secret query values replaced by `***`."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]  # userinfo would be a credential too
    query = [
        (k, v if k in SHOWN_PARAMS else "***")
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="*"), ""))
