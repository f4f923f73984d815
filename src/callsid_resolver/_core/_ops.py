"""What the resolution plan works with: the caller's hints, the tuning, what is learned about the
server, and the I/O operations the plan yields to its drivers (`_core._plan`).

The outcome sent back into the plan: a list of entries (None for a miss) for `ReadCache`, None for
`WriteCache` and `Pause`, `(page, requests)` for `ListPage`, `(conversations, requests, listed)`
for `Fetch` (`listed`: None, `(page, requests)` of `Fetch.then`, or the error that listing
raised), and True when the lock was taken for `ClaimFlight`.
"""

from __future__ import annotations

import enum
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from .._models import Conversation, Resolution
from ._api import ListQuery
from ._keys import Keys
from ._store import CachedMapping, entries_for
from ._window import ReadWindow

__all__ = [
    "NON_TELEPHONY_SOURCES",
    "SIP_SOURCES",
    "TWILIO_SOURCES",
    "UNUSABLE",
    "ClaimFlight",
    "Fetch",
    "FilterSupport",
    "Hints",
    "ListPage",
    "Operation",
    "Pause",
    "Plan",
    "ReadCache",
    "ServerCapabilities",
    "Settings",
    "WriteCache",
    "fits_later",
    "learned_entries",
]

# The two variables a carrier's call id can be in (docs/protocol.md §7, §12).
CALL_SID, CALL_ID = "system__call_sid", "system__call_id"


class FilterSupport(enum.Enum):
    """What we have learned about the server's `dynamic_variable_filter` on system variables."""

    UNKNOWN = "unknown"
    WORKS = "works"  # a filtered list returned the verified conversation
    IGNORED = "ignored"  # a filtered list returned conversations of other calls
    REJECTED = "rejected"  # the server answered 400/422 to the parameter


@dataclass
class ServerCapabilities:
    """Learned once per resolver, so a server that cannot filter stops being asked to. A proof
    that the filter works is per variable (a server may index `system__call_sid` and not
    `system__call_id`); a rejected or ignored parameter is the parameter's, so it holds for both."""

    dynamic_variable_filter: FilterSupport = FilterSupport.UNKNOWN
    call_id_filter: FilterSupport = FilterSupport.UNKNOWN
    # Where a lookup's read window stops its slow start: set by the 429s of an earlier lookup
    # (a workspace's concurrency limit outlives one lookup), raised again by lookups without.
    read_threshold: int | None = None

    def of(self, variable: str) -> FilterSupport:
        return self.call_id_filter if variable == CALL_ID else self.dynamic_variable_filter

    def window(self, limit: int) -> ReadWindow:
        """A new lookup's read window, starting its slow start below what 429s taught."""
        return ReadWindow(limit, self.read_threshold)

    def learn_window(self, window: ReadWindow) -> None:
        if window.congestions:
            self.read_threshold = window.threshold
        elif self.read_threshold is not None:
            self.read_threshold = max(self.read_threshold, window.width)

    def learn(self, variable: str, state: FilterSupport) -> None:
        if state is not FilterSupport.WORKS:
            self.dynamic_variable_filter = self.call_id_filter = state
        elif variable == CALL_ID:
            self.call_id_filter = state
        else:
            self.dynamic_variable_filter = state


@dataclass(frozen=True)
class Hints:
    """What the caller knows about the call; each narrows the server-side listing."""

    agent_id: str | None = None
    phone_number_id: str | None = None
    started_after: int | None = None
    started_before: int | None = None
    initiation_source: str | None = None
    in_progress: bool = False  # the call is going on now: filter and live step only


@dataclass(frozen=True)
class Settings:
    max_scan: int = 1000
    concurrency: int = 16
    use_filter: bool = True
    live_first: bool = True
    filter_page_size: int = 3
    negative_ttl: float = 30.0
    # How long a live conversation that showed no call id is not read again (while the listing
    # still shows it live): repeated lookups during a call then cost list requests only.
    live_ttl: float = 15.0
    # Across processes (a cache with `claim`): how long one process may hold a SID's lookup, and
    # how often the others look for its answer. A crashed holder blocks nobody past `flight_ttl`.
    shared_flight: bool = False
    flight_ttl: float = 20.0
    flight_poll: float = 0.05
    keys: Keys = field(default_factory=Keys)

    def __post_init__(self) -> None:
        if self.max_scan < 0 or self.concurrency < 1 or min(self.negative_ttl, self.live_ttl) < 0:
            raise ValueError(
                "max_scan >= 0, concurrency >= 1, negative_ttl >= 0 and live_ttl >= 0 are required"
            )


@dataclass(frozen=True)
class ReadCache:
    keys: tuple[str, ...]


@dataclass(frozen=True)
class WriteCache:
    """Store `entries`; with `only_if_absent`, only where the key holds nothing (`SET NX`), so
    that a miss never replaces a mapping that `remember()` wrote during the lookup."""

    entries: dict[str, CachedMapping]
    ttl: float | None = None
    only_if_absent: bool = False


@dataclass(frozen=True)
class ListPage:
    query: ListQuery


@dataclass(frozen=True)
class ClaimFlight:
    """Take the cross-process lock of this lookup; the outcome is True when it was taken."""

    key: str
    ttl: float


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class Fetch:
    """GET these conversations, newest first, as many at a time as `window` allows; stop
    starting new ones once one carries `call_sid`. A conversation gone meanwhile (404) is left
    out. The window is the lookup's, shared by all its fetches, so it keeps its width from one
    page to the next: a call near the top of the list, the common case, costs one or two reads
    instead of a full window, and a deep one runs `concurrency` wide from the second page on."""

    conversation_ids: tuple[str, ...]
    call_sid: str
    window: ReadWindow = field(default_factory=lambda: ReadWindow(16))
    # The walk's next page, listed in a free slot of the window once every read has started, so
    # that the next page's reads need not wait for a list request after the last read returns.
    then: ListQuery | None = None


Operation = Union[ReadCache, WriteCache, ListPage, Fetch, ClaimFlight, Pause]  # noqa: UP007 (runtime alias on 3.10)
Plan = Generator[Operation, Any, Resolution]


UNUSABLE = frozenset({FilterSupport.IGNORED, FilterSupport.REJECTED})
# Sources whose conversations never hold an ElevenLabs phone-call record (docs/protocol.md §2): chat
# widgets, SDK sessions and messaging integrations. Unknown or missing sources are still checked.
NON_TELEPHONY_SOURCES = frozenset(
    {
        "android_sdk", "node_js_sdk", "react_native_sdk", "react_sdk", "js_sdk", "python_sdk",
        "widget", "swift_sdk", "whatsapp", "twilio_sms", "flutter_sdk", "zendesk_integration",
        "slack_integration", "telegram_integration", "intercom_integration",
        "freshdesk_integration", "salesforce_integration", "template_preview",
    }
)  # fmt: skip
# Listing sources of carrier calls (docs/protocol.md §2; SIP is spelt both ways in the API).
TWILIO_SOURCES = frozenset({"twilio"})
SIP_SOURCES = frozenset({"sip_trunk", "sip_trunking"})


def fits_later(twilio_form: bool, source: str | None) -> bool:
    """True for a listed call whose source does not fit the id's form: a SIP trunk's call for a
    Twilio SID (`CA` + 32 hex), a Twilio call for any other id. Such calls are read after the
    fitting ones of the whole walk, never skipped: nothing documents that a SIP trunk cannot
    carry a Twilio-form id (a Twilio Elastic SIP trunk may), nor the reverse."""
    return source in (SIP_SOURCES if twilio_form else TWILIO_SOURCES)


def learned_entries(
    keys: Keys, conversations: Sequence[Conversation]
) -> tuple[dict[str, CachedMapping], dict[str, CachedMapping]]:
    """The cache entries fetched conversations teach: every id a conversation shows maps to it
    (a SIP call is looked up by its Call-ID as often as by its `call_sid`), and, apart, the live
    conversations that showed no id, to be remembered for `Settings.live_ttl` only."""
    entries = entries_for(keys, conversations)
    hidden: dict[str, CachedMapping] = {}
    for conv in conversations:
        ids = conv.call_ids
        key = keys.conversation(conv.conversation_id)
        if ids:
            mapping = entries.get(key) or CachedMapping(
                call_sid=next(iter(ids.values())),
                conversation_id=conv.conversation_id,
                agent_id=conv.agent_id,
                status=conv.status,
                start_time_unix_secs=conv.metadata.start_time_unix_secs,
            )
            mapping = mapping.model_copy(update={"call_ids": tuple(ids.values())})
            entries[key] = mapping
            for value in ids.values():
                entries[keys.sid(value)] = mapping.model_copy(update={"call_sid": value})
        elif conv.is_live:
            hidden[key] = CachedMapping(
                call_sid=None,
                conversation_id=conv.conversation_id,
                agent_id=conv.agent_id,
                status=conv.status,
                start_time_unix_secs=conv.metadata.start_time_unix_secs,
            )
    return entries, hidden
