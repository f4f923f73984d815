"""Pydantic models of the ElevenLabs payloads we read, and of our own results.

The API grows: every model keeps fields it does not know (`extra="allow"`) and every enum-like field
is typed `str` (the known values are listed in its description), so a new status or source added by
ElevenLabs never breaks a user in production. Shapes follow the official SDK 2.78.0 models, cited
per class. Phone numbers are kept out of reprs, which end up in logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "LIVE_STATUSES",
    "TERMINAL_STATUSES",
    "ApiErrorBody",
    "CallIdField",
    "Conversation",
    "ConversationInitiationClientData",
    "ConversationMetadata",
    "ConversationSummary",
    "ConversationsPage",
    "PhoneCall",
    "Resolution",
    "ResolutionSource",
    "SignedUrl",
    "TranscriptEntry",
]

# `status` of a conversation: "initiated", "in-progress", "processing", "done", "failed".
LIVE_STATUSES = frozenset({"initiated", "in-progress"})
TERMINAL_STATUSES = frozenset({"processing", "done", "failed"})


class ApiModel(BaseModel):
    """The base of every API payload model: unknown fields kept, never shown."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Unknown fields are kept but never shown: a field ElevenLabs adds later (a
        # `phone_call.to_number`) may hold a phone number, and reprs end up in logs.
        known = type(self).model_fields
        for name, value in super().__repr_args__():
            if name in known:
                yield name, value


class ConversationSummary(ApiModel):
    """One row of `GET /v1/convai/conversations` (SDK `ConversationSummaryResponseModel`).

    A summary carries no call SID, phone number id or dynamic variables: finding a call SID among
    summaries costs one `GET` per candidate.
    """

    agent_id: str
    conversation_id: str
    start_time_unix_secs: int
    call_duration_secs: int = 0
    message_count: int = 0
    status: str = Field(description="initiated | in-progress | processing | done | failed | ...")
    call_successful: str | None = None
    agent_name: str | None = None
    conversation_initiation_source: str | None = Field(
        default=None,
        description="twilio | sip_trunk | widget | js_sdk | ... (see docs/protocol.md §2)",
    )
    direction: str | None = Field(default=None, description="inbound | outbound; null for web")
    termination_reason: str | None = None
    transcript_summary: str | None = None
    call_summary_title: str | None = None

    @property
    def is_live(self) -> bool:
        """True while the call is `initiated` or `in-progress`."""
        return self.status in LIVE_STATUSES


class ConversationsPage(ApiModel):
    """`GetConversationsPageResponseModel`: one page and the cursor to the next."""

    # fail_fast: a huge invalid body stops at its first bad row instead of collecting an error
    # (with a copy of its input) per row.
    conversations: list[ConversationSummary] = Field(fail_fast=True)
    next_cursor: str | None = None
    has_more: bool = False


class PhoneCall(ApiModel):
    """`metadata.phone_call`, any provider.

    The SDK models three variants discriminated on `type` (`twilio`, `sip_trunking`, `exotel`); all
    carry `call_sid`. One lenient model reads them all, so an unknown provider parses too (with
    whatever `call_sid` it has, or none).
    """

    type: str = Field(description="twilio | sip_trunking | exotel | ...")
    direction: str | None = None
    phone_number_id: str | None = None
    agent_number: str | None = Field(default=None, repr=False)
    external_number: str | None = Field(default=None, repr=False)
    call_sid: str | None = None
    stream_sid: str | None = None
    call_id: str | None = None
    call_result: str | None = None


class ConversationMetadata(ApiModel):
    """`metadata` of a conversation (SDK `ConversationHistoryMetadataCommonModel`), partially."""

    start_time_unix_secs: int
    call_duration_secs: int = 0
    accepted_time_unix_secs: int | None = None
    termination_reason: str | None = None
    conversation_initiation_source: str | None = None
    phone_call: PhoneCall | None = None


class ConversationInitiationClientData(ApiModel):
    """`conversation_initiation_client_data`: where `system__*` variables live in practice.

    Values keep their JSON types: numeric system variables come as numbers
    (`system__call_duration_secs: 158`), absent phone variables as null.
    """

    dynamic_variables: dict[str, Any] = Field(default_factory=dict, repr=False)
    user_id: str | None = None

    @field_validator("dynamic_variables", mode="before")
    @classmethod
    def _null_is_none(cls, value: Any) -> Any:
        # The SDK types the field Optional, and `"dynamic_variables": null` is seen on real
        # conversations (docs/protocol.md §12): no variables, not a broken response.
        return {} if value is None else value


class TranscriptEntry(ApiModel):
    """One turn of `transcript` (SDK `ConversationHistoryTranscriptResponseModel`), partially."""

    role: str
    time_in_call_secs: int = 0
    message: str | None = None


# Where a conversation shows a carrier's call id, in the order they are trusted: the phone-call
# record is documented (docs/protocol.md §3), the variables are what tools see (§7). A SIP call
# may show a UUID `call_sid` and an RFC 3261 Call-ID in `call_id` / `system__call_id` (§12).
CallIdField = Literal[
    "phone_call.call_sid", "phone_call.call_id", "system__call_sid", "system__call_id"
]


class Conversation(ApiModel):
    """`GET /v1/convai/conversations/{conversation_id}` (SDK `GetConversationResponseModel`)."""

    agent_id: str
    conversation_id: str
    status: str
    metadata: ConversationMetadata
    agent_name: str | None = None
    user_id: str | None = None
    conversation_initiation_client_data: ConversationInitiationClientData | None = None
    transcript: list[TranscriptEntry] = Field(default_factory=list, repr=False, fail_fast=True)

    @property
    def call_sid(self) -> str | None:
        """The carrier's call id: `metadata.phone_call.call_sid`, else `system__call_sid`.

        The phone-call record is the documented source; the dynamic variable is observed in real
        payloads and is the fallback when a provider's record lacks the field.
        """
        phone = self.metadata.phone_call
        if phone is not None and phone.call_sid:
            return phone.call_sid
        data = self.conversation_initiation_client_data
        if data is not None:
            value = data.dynamic_variables.get("system__call_sid")
            if value is not None and str(value):
                return str(value)
        return None

    @property
    def call_ids(self) -> dict[CallIdField, str]:
        """Every carrier call id this conversation shows, by where it shows it (SIP calls can
        show a UUID `call_sid` and an RFC 3261 Call-ID; a live call may show none)."""
        out: dict[CallIdField, str] = {}
        phone = self.metadata.phone_call
        if phone is not None:
            if phone.call_sid:
                out["phone_call.call_sid"] = phone.call_sid
            if phone.call_id:
                out["phone_call.call_id"] = phone.call_id
        data = self.conversation_initiation_client_data
        variables = data.dynamic_variables if data is not None else {}
        for name in ("system__call_sid", "system__call_id"):
            value = variables.get(name)
            if value is not None and not isinstance(value, (dict, list)) and str(value):
                out[name] = str(value)
        return out

    def matched_by(self, call_id: str) -> CallIdField | None:
        """Where this conversation shows `call_id`, or None when it does not."""
        return next((k for k, v in self.call_ids.items() if v == call_id), None)

    @property
    def is_live(self) -> bool:
        """True while the call is `initiated` or `in-progress`."""
        return self.status in LIVE_STATUSES


class SignedUrl(ApiModel):
    """`GET /v1/convai/conversation/get-signed-url`. The URL holds a secret: it is not repr'd."""

    signed_url: str = Field(repr=False)


class ApiErrorBody(ApiModel):
    """`{"detail": ...}`: a `{status, message}` object, a list of validation items, or a string."""

    detail: Any = None


ResolutionSource = Literal["cache", "filter", "live", "scan", "primed"]


class Resolution(BaseModel):
    """The answer to "which conversation is this call?".

    `call_sid` is the id that was looked up. `source` names the step that answered (`cache`,
    `filter`, `live`, `scan`, or `primed` for a mapping learned for free); `requests` is the exact
    number of HTTP requests this resolution sent, retries included (0 from the cache). `status` is
    the conversation's status when it was fetched. `matched_by` says where the conversation showed
    the id (`phone_call.call_sid`, `phone_call.call_id`, `system__call_sid`, `system__call_id`);
    None when answered from the cache or primed.
    """

    model_config = ConfigDict(frozen=True)

    call_sid: str
    conversation_id: str
    agent_id: str | None = None
    status: str | None = None
    start_time_unix_secs: int | None = None
    source: ResolutionSource = "primed"
    requests: int = 0
    matched_by: CallIdField | None = None

    @classmethod
    def from_conversation(
        cls,
        conversation: Conversation,
        *,
        source: ResolutionSource,
        requests: int = 0,
        call_id: str | None = None,
    ) -> Resolution:
        """The resolution of `call_id` (default: the conversation's `call_sid`) to
        `conversation`; ValueError when the conversation does not show that id."""
        sid = call_id if call_id is not None else conversation.call_sid
        matched = None if sid is None else conversation.matched_by(sid)
        if sid is None or matched is None:
            raise ValueError(f"conversation {conversation.conversation_id} carries no such call id")
        return cls(
            matched_by=matched,
            call_sid=sid,
            conversation_id=conversation.conversation_id,
            agent_id=conversation.agent_id,
            status=conversation.status,
            start_time_unix_secs=conversation.metadata.start_time_unix_secs,
            source=source,
            requests=requests,
        )
