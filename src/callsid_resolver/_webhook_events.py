"""The webhook payload models, `parse_webhook`, and the mappings a webhook or an outbound call
teaches (the public face is `callsid_resolver.webhooks`).

Sources: the post-call webhooks docs and SDK `webhooks_custom.py:construct_event`
(docs/protocol.md §9), SDK `TwilioOutboundCallResponse` (§6). No message holds the secret, a
digest or a phone number.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from pydantic import Field, SkipValidation, ValidationError, ValidationInfo, field_validator

from ._core._api import validate_conversation_id
from ._core._callsid import validate_call_sid
from ._json import loads_bounded
from ._models import ApiModel, Conversation
from ._webhook_signature import (
    MAX_BODY,
    Body,
    Headers,
    HeaderValue,
    MalformedPayload,
    body_bytes,
    find_header,
    verify_signature,
)

__all__ = [
    "CallInitiationFailure",
    "FailureMetadata",
    "LearnedMapping",
    "PostCallAudio",
    "PostCallTranscriptionOtel",
    "WebhookEvent",
    "mapping_from_outbound_call",
    "mapping_from_webhook",
    "parse_webhook",
]


class FailureMetadata(ApiModel):
    """`metadata` of a call initiation failure: the carrier's own report, in `body`."""

    type: str = Field(description="twilio | sip | ...")
    # Twilio's StatusCallback form or the SIP details: both hold From/To phone numbers.
    body: dict[str, Any] = Field(default_factory=dict, repr=False)


class CallInitiationFailure(ApiModel):
    """`data` of `call_initiation_failure`: a call that never connected (busy, no answer)."""

    agent_id: str
    conversation_id: str
    failure_reason: str | None = Field(default=None, description="busy | no-answer | unknown")
    metadata: FailureMetadata | None = None

    @property
    def call_sid(self) -> str | None:
        """Twilio's `body.CallSid`, or the SIP `body.call_sid` (often a UUID)."""
        body = self.metadata.body if self.metadata is not None else {}
        for key in ("CallSid", "call_sid"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
        return None


class PostCallAudio(ApiModel):
    """`data` of `post_call_audio`: the whole call as base64 MP3 (kept out of the repr)."""

    agent_id: str
    conversation_id: str
    full_audio: str = Field(default="", repr=False)


# OTLP attributes read for a call id, at most this many (a trace of a long call is large).
_MAX_OTLP_ATTRIBUTES = 10_000


class PostCallTranscriptionOtel(ApiModel):
    """`data` of `post_call_transcription_otel`: the conversation as OTLP JSON traces
    (`{"resourceSpans": [...]}`, docs/protocol.md §12), sent instead of `post_call_transcription`
    when the agent's webhook has OpenTelemetry transcripts on. The traces stay out of the repr.
    """

    agent_id: str | None = None
    conversation_id: str
    otlp_traces: dict[str, Any] = Field(default_factory=dict, repr=False)

    @property
    def call_sid(self) -> str | None:
        """The call's SID when a trace attribute carries one, else None.

        UNCONFIRMED: the attribute names (`elevenlabs.*`) are not listed for the call SID, so
        any resource or span attribute whose key ends in `call_sid` (such as
        `elevenlabs.phone_call.call_sid` or `system__call_sid`) with a string value counts.
        """
        for key, value in _otlp_attributes(self.otlp_traces):
            if key.lower().endswith("call_sid") and isinstance(value, str) and value:
                return value
        return None


def _otlp_attributes(traces: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(key, value) of the resource and span attributes of OTLP JSON, in order, bounded."""
    count = 0
    for resource_spans in _dicts(traces.get("resourceSpans")):
        groups = [_dict(resource_spans.get("resource")).get("attributes")]
        for scope_spans in _dicts(resource_spans.get("scopeSpans")):
            groups += [span.get("attributes") for span in _dicts(scope_spans.get("spans"))]
        for attributes in groups:
            for attribute in _dicts(attributes):
                count += 1
                if count > _MAX_OTLP_ATTRIBUTES:
                    return
                value = _dict(attribute.get("value"))
                yield str(attribute.get("key", "")), value.get("stringValue")


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


_DATA_MODELS: dict[str, type[ApiModel]] = {
    "post_call_transcription": Conversation,
    "post_call_transcription_otel": PostCallTranscriptionOtel,
    "call_initiation_failure": CallInitiationFailure,
    "post_call_audio": PostCallAudio,
}


class WebhookEvent(ApiModel):
    """The envelope `{"type", "event_timestamp", "data"}`, `data` parsed by `type`: a
    `Conversation` (`post_call_transcription`), `PostCallTranscriptionOtel`,
    `CallInitiationFailure` or `PostCallAudio`; any other type keeps its raw dict, so a new event
    type never fails to parse. The same delivery may come more than once (retries are opt-in:
    see `delivery_key` and `MemoryDedupe`)."""

    type: str = Field(description="post_call_transcription | post_call_audio | ...")
    event_timestamp: int | None = None
    # Validation is done by `_parse_data` from `type`; a plain union would let pydantic coerce an
    # unknown event's dict into whichever model happens to fit.
    data: SkipValidation[
        Conversation
        | PostCallTranscriptionOtel
        | CallInitiationFailure
        | PostCallAudio
        | dict[str, Any]
    ]

    @field_validator("data", mode="before")
    @classmethod
    def _parse_data(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, dict):
            raise ValueError("data must be a JSON object")
        model = _DATA_MODELS.get(info.data.get("type", ""))
        return model.model_validate(value) if model is not None else value

    @property
    def conversation_id(self) -> str | None:
        """The conversation the event is about, when the payload carries it."""
        return self._field("conversation_id")

    @property
    def agent_id(self) -> str | None:
        """The agent of the conversation, when the payload carries it."""
        return self._field("agent_id")

    @property
    def call_sid(self) -> str | None:
        """The carrier's call id, for the types that carry one (else None)."""
        if isinstance(self.data, (Conversation, CallInitiationFailure, PostCallTranscriptionOtel)):
            return self.data.call_sid
        return None

    def _field(self, name: str) -> str | None:
        data = self.data
        value = data.get(name) if isinstance(data, dict) else getattr(data, name, None)
        return value if isinstance(value, str) and value else None

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # An unknown event's raw data may hold anything, phone numbers included: show ids only.
        yield "type", self.type
        yield "event_timestamp", self.event_timestamp
        yield "conversation_id", self.conversation_id
        yield "call_sid", self.call_sid


def parse_webhook(
    body: Body,
    headers: Headers | HeaderValue | None,
    secret: str,
    *,
    tolerance: float = 1800,
    max_future_skew: float = 300,
    now: float | None = None,
) -> WebhookEvent:
    """Verify and parse one delivery. `headers` is the request's headers (any mapping; the name is
    matched case-insensitively, as `str` or `bytes`) or the `ElevenLabs-Signature` value itself.
    `body` and header values take the types `verify_signature` takes. A body larger than
    `MAX_BODY` or nested deeper than 64 levels is a `MalformedPayload`."""
    value = headers if not isinstance(headers, Mapping) else find_header(headers)
    verify_signature(
        body, value, secret, tolerance=tolerance, max_future_skew=max_future_skew, now=now
    )
    try:
        return WebhookEvent.model_validate(loads_bounded(body_bytes(body), max_size=MAX_BODY))
    except ValidationError as exc:
        errors = [
            (".".join(map(str, e["loc"])), e["msg"])
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
    except ValueError as exc:  # not JSON, not UTF-8, too large or too deep
        errors = [("", f"not JSON ({type(exc).__name__})")]
    # Raised outside `except`: the chained pydantic error would print the input (phone numbers).
    raise MalformedPayload(errors)


class LearnedMapping(NamedTuple):
    """A call SID → conversation mapping learned without asking ElevenLabs; teach a resolver
    with `resolver.remember(*learned)`."""

    call_sid: str
    conversation_id: str
    agent_id: str | None = None


def mapping_from_webhook(event: WebhookEvent) -> LearnedMapping | None:
    """The mapping a webhook carries: transcription and initiation-failure events have one, an
    OTel transcription when its traces carry the call SID."""
    return _checked(event.call_sid, event.conversation_id, event.agent_id)


def mapping_from_outbound_call(
    response: Mapping[str, Any], *, agent_id: str | None = None
) -> LearnedMapping | None:
    """The mapping in an outbound-call response: Twilio's (`POST /v1/convai/twilio/outbound-call`,
    `callSid` on the wire, `call_sid` from the SDK's `model_dump()`) or a SIP trunk's
    (`POST /v1/convai/sip-trunk/outbound-call`, `sip_call_id`; docs/protocol.md §6, §12). None
    for `success: false` or null ids. The response names no agent: pass the `agent_id` you sent.
    """
    if response.get("success") is False:
        return None
    sid = response.get("callSid") or response.get("call_sid") or response.get("sip_call_id")
    return _checked(sid, response.get("conversation_id"), agent_id)


def _checked(call_sid: object, conversation_id: object, agent: str | None) -> LearnedMapping | None:
    if not isinstance(call_sid, str) or not isinstance(conversation_id, str):
        return None
    try:
        # The same checks `remember` makes: a webhook with an id we could never look up teaches
        # nothing, and must not turn into an exception inside the user's webhook handler.
        return LearnedMapping(
            validate_call_sid(call_sid), validate_conversation_id(conversation_id), agent
        )
    except ValueError:
        return None
