"""What `RedisRouter` workers say to each other on their pub/sub channels, as typed records.

No I/O here: the records, their encoding (`encode_run`, `chunk_run`), the ownership keys and
records (`route_key`, `owner_record`, `parse_owner`) and the Lua scripts the router runs. A
channel is a Redis pub/sub channel anyone with access to the Redis can publish on, so every
message is decoded once, at the boundary, into a typed record (or refused): the listener then
works on checked fields only, and no message can end it. Four shapes:

* `{"op": "send", "id", "from", "sid", "cid", "event"}`: deliver `event` (a routable client
  event, docs/protocol.md §8) to the session of call `sid` or conversation `cid`;
* `{"op": "ack", "id", "from", "error"?, ...}`: the owner's answer to send `id`; no `error`
  means its write was confirmed;
* `{"op": "run", "id", "from", "sid", "cid", "events"}`: deliver `events` (1 to `MAX_RUN`), in
  that order, to one session: a burst crosses Redis as one message instead of one per event;
* `{"op": "runack", "id", "from", "failed"}`: the owner's one answer to run `id`, once every
  write of the run has settled. `failed` holds an `Ack` (with an `error`) per event that was not
  delivered, its `id` the event's 1-based position in the run; every other event was confirmed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, TypeAdapter

from .._core._keys import Keys
from .._json import loads_bounded
from ._errors import NotLive, SenderError, SessionClosed
from ._protocol import (
    MAX_FRAME,
    ClientEvent,
    ClientToolResult,
    ContextualUpdate,
    UserActivity,
    UserMessage,
)
from ._target import Target

__all__ = [
    "MAX_MESSAGE_ID",
    "MAX_RUN",
    "MAX_RUN_SIZE",
    "RENEW",
    "ROUTABLE",
    "ROUTE",
    "Ack",
    "Envelope",
    "MalformedMessage",
    "Message",
    "Record",
    "RoutableEvent",
    "Run",
    "RunAck",
    "Send",
    "chunk_run",
    "decode",
    "encode_run",
    "owner_record",
    "parse_owner",
    "route_key",
]

MAX_MESSAGE_ID = 2**63 - 1
MAX_RUN = 256  # events in one run, at most
ROUTABLE = frozenset({"contextual_update", "user_message", "client_tool_result", "user_activity"})
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

    op: Literal["send", "ack", "run", "runack"]
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
        """The call as error messages name it (`Target.label`)."""
        return Target(self.sid, self.cid).label


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


class Run(Envelope):
    """Events for one session, to be written in this order; answered by one `RunAck`."""

    op: Literal["run"] = "run"
    sid: ShortText | None = None
    cid: ShortText | None = None
    events: Annotated[list[RoutableEvent], Field(min_length=1, max_length=MAX_RUN)]

    @property
    def target(self) -> str:
        """The call as error messages name it (`Target.label`)."""
        return Target(self.sid, self.cid).label


class RunAck(Envelope):
    """The answer to run `id`: an `Ack` per event that failed (its `id` the 1-based position)."""

    op: Literal["runack"] = "runack"
    failed: Annotated[list[Ack], Field(max_length=MAX_RUN)] = []
    refused: ShortText | None = None  # the whole run was refused (unreadable): why, in a word

    def failures(self, size: int) -> list[BaseException | None]:
        """The outcome of each of the run's `size` events: None for confirmed, else the error."""
        if self.refused is not None:
            error = SenderError(f"worker {self.sender} could not read the run: {self.refused}")
            return [error] * size
        outcomes: list[BaseException | None] = [None] * size
        for ack in self.failed:
            if ack.id <= size:
                outcomes[ack.id - 1] = ack.failure() or SenderError("refused without a reason")
        return outcomes


Record = Send | Ack | Run | RunAck
Message = Annotated[Record, Field(discriminator="op")]
_MESSAGE: TypeAdapter[Record] = TypeAdapter(Message)
# A run is cut by the sender to stay within a frame; the envelope adds a few hundred characters.
_MAX_SIZE = MAX_FRAME + 4096
MAX_RUN_SIZE = MAX_FRAME  # characters of a run's events, at most (the sender cuts runs there)


def decode(data: bytes | str) -> Record:
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


# -- ownership --------------------------------------------------------------------------------
# A call held by a worker is announced under `Keys.route_sid` and `Keys.route_conversation`
# (hash-tagged by id), valued `owner_record(worker, conversation id)`.


def route_key(keys: Keys, target: Target) -> str:
    """The ownership key a send looks up: by call SID, else by conversation id."""
    if target.call_sid is not None:
        return keys.route_sid(target.call_sid)
    assert target.conversation_id is not None  # `Target.of` makes sure of one of them
    return keys.route_conversation(target.conversation_id)


def owner_record(worker_id: str, conversation_id: str) -> str:
    """The value of an ownership key: the worker, a space, the conversation it holds."""
    return f"{worker_id} {conversation_id}"


def parse_owner(raw: bytes | str) -> tuple[str, str]:
    """(worker, conversation id) of an ownership key's value (the id "" when absent)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    worker, _, conversation_id = text.partition(" ")
    return worker, conversation_id


# -- sending a run ----------------------------------------------------------------------------


def chunk_run(events: Sequence[ClientEvent]) -> tuple[list[list[tuple[int, str]]], list[int]]:
    """`events` as JSON, cut into runs of at most `MAX_RUN` events and `MAX_RUN_SIZE`
    characters, each event with its position; and the positions of those that cannot be routed
    (not a `RoutableEvent` type)."""
    chunks: list[list[tuple[int, str]]] = [[]]
    refused: list[int] = []
    size = 0
    for position, event in enumerate(events):
        if event.type not in ROUTABLE:
            refused.append(position)
            continue
        encoded = event.model_dump_json(exclude_none=True)
        if chunks[-1] and (len(chunks[-1]) >= MAX_RUN or size + len(encoded) > MAX_RUN_SIZE):
            chunks.append([])
            size = 0
        chunks[-1].append((position, encoded))
        size += len(encoded)
    return [chunk for chunk in chunks if chunk], refused


def encode_run(message_id: int, worker_id: str, target: Target, events: Sequence[str]) -> str:
    """A `Run` message from events already encoded as JSON (`chunk_run`)."""
    # Built from the events' own JSON: validating our own typed events again would cost as
    # much as the rest of the send. The owner decodes it into a checked `Run` all the same.
    by = (
        {"sid": target.call_sid} if target.call_sid is not None else {"cid": target.conversation_id}
    )
    head = json.dumps({"op": "run", "id": message_id, "from": worker_id, **by})
    return f'{head[:-1]}, "events": [{",".join(events)}]}}'


# -- scripts ----------------------------------------------------------------------------------
# KEYS[1] ownership key; ARGV[1] channel prefix, ARGV[2] message. One round trip, and a worker's
# death (no subscriber) is noticed and cleaned up in the same step that found it.
ROUTE = """
local owner = redis.call('GET', KEYS[1])
if not owner then return false end
local worker = string.match(owner, '^(%S+)')
local receivers = redis.call('PUBLISH', ARGV[1] .. worker, ARGV[2])
if receivers == 0 then redis.call('DEL', KEYS[1]) end
return {owner, receivers}
"""
# Renew our lease, or take the key back if it expired (a paused worker); never take it from
# another worker that registered the call since.
RENEW = """
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
