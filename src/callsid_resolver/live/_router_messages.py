"""What `RedisRouter` workers say to each other on their pub/sub channels, as typed records.

No I/O here. A channel is a Redis pub/sub channel anyone with access to the Redis can publish
on, so every message is decoded once, at the boundary, into a `Send` or an `Ack` (or refused):
the listener then works on checked fields only, and no message can end it. Two shapes:

* `{"op": "send", "id", "from", "sid", "cid", "event"}`: deliver `event` (a routable client
  event, docs/protocol.md §8) to the session of call `sid` or conversation `cid`;
* `{"op": "ack", "id", "from", "error"?, ...}`: the owner's answer to send `id`; no `error`
  means its write was confirmed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, TypeAdapter

from .._json import loads_bounded
from ._errors import NotLive, SenderError, SessionClosed
from ._protocol import MAX_FRAME, ClientToolResult, ContextualUpdate, UserActivity, UserMessage

__all__ = [
    "MAX_MESSAGE_ID",
    "Ack",
    "Envelope",
    "MalformedMessage",
    "Message",
    "RoutableEvent",
    "Send",
    "decode",
]

MAX_MESSAGE_ID = 2**63 - 1
_MAX_TEXT = 200  # ids, worker names, reasons: all short on the wire we write
WorkerName = Annotated[str, Field(pattern=r"^\S{1,200}$")]
ShortText = Annotated[str, Field(max_length=_MAX_TEXT)]
MessageId = Annotated[StrictInt, Field(ge=1, le=MAX_MESSAGE_ID)]
RoutableEvent = Annotated[
    ContextualUpdate | UserMessage | ClientToolResult | UserActivity,
    Field(discriminator="type"),
]


class MalformedMessage(ValueError):
    """A channel message that is not a `Send` or an `Ack`; `envelope` is set when at least its
    `op`, `id` and `from` were readable (a send the owner can still refuse with an ack)."""

    def __init__(self, reason: str, envelope: Envelope | None = None) -> None:
        self.envelope = envelope
        super().__init__(reason)


class _Record(BaseModel):
    # Strict: a float id (`1e400` decodes to inf), a list where a string goes, are refused
    # instead of coerced. Extra keys are ignored, so a newer worker may add some.
    model_config = ConfigDict(frozen=True, strict=True, extra="ignore", populate_by_name=True)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class Envelope(_Record):
    """The part of every message the listener needs to answer at all."""

    op: Literal["send", "ack"]
    id: MessageId
    sender: WorkerName = Field(alias="from")


class Send(Envelope):
    """A message for the session of call `sid` (or conversation `cid`) on the receiving worker."""

    op: Literal["send"] = "send"
    sid: ShortText | None = None
    cid: ShortText | None = None
    event: RoutableEvent

    @property
    def target(self) -> str:
        return f"call {self.sid}" if self.sid else f"conversation {self.cid}"


class Ack(Envelope):
    """The answer to send `id`: confirmed (no `error`), `not_here`, `closed` or `failed`."""

    op: Literal["ack"] = "ack"
    error: Literal["not_here", "closed", "failed"] | None = None
    target: ShortText | None = None  # not_here: the call the sender named
    kind: ShortText | None = None  # not_here: the event type
    cid: ShortText | None = None  # closed: the session's conversation
    code: Annotated[StrictInt, Field(ge=0, le=4999)] | None = None  # closed: close frame
    reason: Annotated[str, Field(max_length=123)] = ""  # closed: close reason (<= 123 bytes)
    sent: StrictBool = False  # closed: written before the drop
    detail: ShortText | None = None  # failed: the error's class name

    def failed(self, error: BaseException) -> Ack:
        """This acknowledgement for a write that failed on the owner: enough to rebuild it."""
        if isinstance(error, SessionClosed):
            closed = {"code": error.code, "reason": error.reason[:123], "sent": error.sent}
            return self.model_copy(
                update={"error": "closed", "cid": error.conversation_id, **closed}
            )
        return self.model_copy(update={"error": "failed", "detail": type(error).__name__})

    def failure(self) -> BaseException | None:
        """The error the sender raises for this acknowledgement; None when it was confirmed."""
        if self.error == "not_here":
            held = f"worker {self.sender} no longer holds the session"
            return NotLive(self.kind or "message", self.target or "the call", {"session": held})
        if self.error == "closed":
            return SessionClosed(self.cid, code=self.code, reason=self.reason, sent=self.sent)
        if self.error is not None:
            return SenderError(f"worker {self.sender} could not deliver: {self.detail}")
        return None


Message = Annotated[Send | Ack, Field(discriminator="op")]
_MESSAGE: TypeAdapter[Send | Ack] = TypeAdapter(Message)
# A send's event is at most a frame; the envelope adds a few hundred characters.
_MAX_SIZE = MAX_FRAME + 4096


def decode(data: bytes | str) -> Send | Ack:
    """One channel message as a record; raises `MalformedMessage` (never anything else)."""
    try:
        raw: Any = loads_bounded(data, max_size=_MAX_SIZE)
    except ValueError as exc:  # not UTF-8, not JSON, too large or too deep
        raise MalformedMessage(f"not JSON ({type(exc).__name__})") from None
    try:
        return _MESSAGE.validate_python(raw)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        envelope = _envelope(raw)
        raise MalformedMessage(f"not a router message: {_first_error(exc)}", envelope) from None


def _envelope(raw: Any) -> Envelope | None:
    try:
        return Envelope.model_validate(raw)
    except ValueError:
        return None


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if errors is None:
        return type(exc).__name__
    # Location and message only: the input may hold the text of a message for a live call.
    first = errors(include_url=False, include_input=False, include_context=False)[0]
    return f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
