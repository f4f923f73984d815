"""The resolution strategy, written once as a generator of I/O requests (sans-I/O).

`resolve_plan` yields operations (`ReadCache`, `WriteCache`, `ListPage`, `Fetch`) and is sent each
one's outcome as `(value, http_requests)`; an `ApiError` from a list call is thrown into it. The
sync and async resolvers are small drivers of this one generator, so the strategy cannot drift
between them. Cheapest first (DESIGN.md "Resolution, cheapest first"):

1. cache (0 requests);
2. server-side filter `dynamic_variable_filter=system__call_sid:eq:<sid>`, every hit verified by a
   GET against `metadata.phone_call.call_sid` (2 requests);
3. live first: list only `initiated`/`in-progress` conversations and GET those not yet known;
4. windowed scan, newest first, bounded by `max_scan` listed conversations.

Every conversation fetched on the way is cached in both directions, so a scan warms the cache for
the calls around it and later scans skip what they have read.
"""

from __future__ import annotations

import enum
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from .._cache import CachedMapping, CacheKeys
from .._exceptions import BadRequest, ConversationNotFound, SearchSummary
from .._models import (
    Conversation,
    ConversationsPage,
    ConversationSummary,
    Resolution,
    ResolutionSource,
)
from ._api import MAX_PAGE_SIZE, ListQuery

LIVE_EXCLUDES = ("processing", "done", "failed")
# Sources whose conversations never hold an ElevenLabs phone-call record (api-facts §2): chat
# widgets, SDK sessions and messaging integrations. Unknown or missing sources are still checked.
NON_TELEPHONY_SOURCES = frozenset(
    {
        "android_sdk", "node_js_sdk", "react_native_sdk", "react_sdk", "js_sdk", "python_sdk",
        "widget", "swift_sdk", "whatsapp", "twilio_sms", "flutter_sdk", "zendesk_integration",
        "slack_integration", "telegram_integration", "intercom_integration",
        "freshdesk_integration", "salesforce_integration", "template_preview",
    }
)  # fmt: skip


class FilterSupport(enum.Enum):
    """What we have learned about the server's `dynamic_variable_filter` on system variables."""

    UNKNOWN = "unknown"
    WORKS = "works"  # a filtered list returned the verified conversation
    IGNORED = "ignored"  # a filtered list returned conversations of other calls
    REJECTED = "rejected"  # the server answered 400/422 to the parameter


@dataclass
class ServerCapabilities:
    """Learned once per resolver, so a server that cannot filter stops being asked to."""

    dynamic_variable_filter: FilterSupport = FilterSupport.UNKNOWN


@dataclass(frozen=True)
class Hints:
    """What the caller knows about the call; each narrows the server-side listing."""

    agent_id: str | None = None
    phone_number_id: str | None = None
    started_after: int | None = None
    started_before: int | None = None
    initiation_source: str | None = None


@dataclass(frozen=True)
class Settings:
    max_scan: int = 1000
    concurrency: int = 8
    use_filter: bool = True
    live_first: bool = True
    filter_page_size: int = 3
    negative_ttl: float = 30.0
    # Across processes (a cache with `claim`): how long one process may hold a SID's lookup, and
    # how often the others look for its answer. A crashed holder blocks nobody past `flight_ttl`.
    shared_flight: bool = False
    flight_ttl: float = 20.0
    flight_poll: float = 0.05
    keys: CacheKeys = field(default_factory=CacheKeys)

    def __post_init__(self) -> None:
        if self.max_scan < 0 or self.concurrency < 1 or self.negative_ttl < 0:
            raise ValueError("max_scan >= 0, concurrency >= 1 and negative_ttl >= 0 are required")


@dataclass(frozen=True)
class ReadCache:
    keys: tuple[str, ...]


@dataclass(frozen=True)
class WriteCache:
    entries: dict[str, CachedMapping]
    ttl: float | None = None


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
    """GET these conversations, newest first, at most `concurrency` at a time; stop starting new
    ones once one carries `call_sid`. A conversation gone meanwhile (404) is left out."""

    conversation_ids: tuple[str, ...]
    call_sid: str
    concurrency: int = 8

    def room(self, completed: int, running: int) -> int:
        """How many more reads to start now. The window opens by one read per completed read
        (TCP's slow start), so a call near the top of the list, the common case, costs one or
        two reads instead of a full window, and a deep one still runs `concurrency` wide."""
        return max(min(self.concurrency, 1 + completed) - running, 0)


Operation = Union[ReadCache, WriteCache, ListPage, Fetch, ClaimFlight, Pause]  # noqa: UP007 (runtime alias on 3.10)
Plan = Generator[Operation, Any, Resolution]


def resolve_plan(call_sid: str, hints: Hints, caps: ServerCapabilities, settings: Settings) -> Plan:
    search = _Search(call_sid, hints, caps, settings)
    return search.run()


class _Search:
    def __init__(
        self, call_sid: str, hints: Hints, caps: ServerCapabilities, settings: Settings
    ) -> None:
        self.call_sid = call_sid
        self.hints = hints
        self.caps = caps
        self.settings = settings
        self.keys = settings.keys
        self.requests = 0
        self.pages = 0
        self.checked: set[str] = set()
        self.steps: list[str] = []

    def run(self) -> Plan:
        cached: list[CachedMapping | None] = yield ReadCache((self.keys.sid(self.call_sid),))
        entry = cached[0]
        if entry is None and self.settings.shared_flight:
            entry = yield from self._wait_for_another_process()
        if entry is not None:
            if entry.conversation_id is None:
                raise ConversationNotFound(self.call_sid, None, cached=True)
            return entry.to_resolution()

        filter_state = self.caps.dynamic_variable_filter
        if self.settings.use_filter and filter_state not in _UNUSABLE:
            found = yield from self._filtered()
            if found is not None:
                return found
        # Once the server has proven it filters on system variables, an empty filtered list is a
        # real miss; only calls too new to be indexed yet remain, and the live step covers them.
        trusted_miss = (
            "filter" in self.steps and self.caps.dynamic_variable_filter is FilterSupport.WORKS
        )
        if self.settings.live_first:
            found = yield from self._walk("live", self._query(exclude_statuses=LIVE_EXCLUDES))
            if found is not None:
                return found
        if not trusted_miss:
            found = yield from self._walk("scan", self._query())
            if found is not None:
                return found

        miss = CachedMapping(call_sid=self.call_sid, conversation_id=None)
        yield WriteCache({self.keys.sid(self.call_sid): miss}, self.settings.negative_ttl)
        raise ConversationNotFound(self.call_sid, self._summary())

    def _wait_for_another_process(self) -> Generator[Operation, Any, CachedMapping | None]:
        """Claim this SID's lookup for the fleet, or wait for the holder's answer in the cache."""
        lock, poll = self.keys.lock(self.call_sid), self.settings.flight_poll
        waited = 0.0
        while waited < self.settings.flight_ttl:
            if (yield ClaimFlight(lock, self.settings.flight_ttl)):
                return None
            yield Pause(poll)
            waited += poll
            entry: CachedMapping | None = (yield ReadCache((self.keys.sid(self.call_sid),)))[0]
            if entry is not None:
                return entry
        return None  # the holder is too slow: look it up ourselves

    def _filtered(self) -> Generator[Operation, Any, Resolution | None]:
        self.steps.append("filter")
        query = self._query(
            page_size=self.settings.filter_page_size,
            dynamic_variable_filter=f"system__call_sid:eq:{self.call_sid}",
        )
        try:
            page: ConversationsPage = yield from self._list(query)
        except BadRequest:
            self.caps.dynamic_variable_filter = FilterSupport.REJECTED
            return None
        if not page.conversations:
            return None
        found = yield from self._check([c.conversation_id for c in page.conversations], "filter")
        self.caps.dynamic_variable_filter = (
            FilterSupport.WORKS if found is not None else FilterSupport.IGNORED
        )
        return found

    def _walk(
        self, step: ResolutionSource, query: ListQuery | None
    ) -> Generator[Operation, Any, Resolution | None]:
        """List newest first and check each candidate page by page, within `max_scan`."""
        self.steps.append(step)
        listed = 0
        while query is not None and listed < self.settings.max_scan:
            page: ConversationsPage = yield from self._list(query)
            listed += len(page.conversations)
            candidates = [s.conversation_id for s in page.conversations if self._worth_checking(s)]
            found = yield from self._check(candidates, step)
            if found is not None:
                return found
            query = query.next(page)
        return None

    def _check(
        self, ids: Sequence[str], step: ResolutionSource
    ) -> Generator[Operation, Any, Resolution | None]:
        """GET the candidates not already known, cache what they teach, return the match if any."""
        ids = [i for i in dict.fromkeys(ids) if i not in self.checked]
        if not ids:
            return None
        self.checked.update(ids)
        known: list[CachedMapping | None] = yield ReadCache(
            tuple(self.keys.conversation(i) for i in ids)
        )
        for entry in known:
            if (
                entry is not None
                and entry.call_sid == self.call_sid
                and self._agent_fits(entry.agent_id)
            ):
                return entry.to_resolution(self.requests)
        unknown = tuple(i for i, entry in zip(ids, known, strict=True) if entry is None)
        if not unknown:
            return None
        conversations: list[Conversation]
        conversations, spent = yield Fetch(unknown, self.call_sid, self.settings.concurrency)
        self.requests += spent
        entries = self.keys.entries_for(conversations)
        if entries:
            yield WriteCache(entries)
        for conv in conversations:
            if conv.call_sid == self.call_sid and self._agent_fits(conv.agent_id):
                return Resolution.from_conversation(conv, source=step, requests=self.requests)
        return None

    def _list(self, query: ListQuery) -> Generator[Operation, Any, ConversationsPage]:
        try:
            page, spent = yield ListPage(query)
        except BadRequest:
            self.requests += 1
            raise
        self.requests += spent
        self.pages += 1
        return page  # type: ignore[no-any-return]

    def _worth_checking(self, summary: ConversationSummary) -> bool:
        if summary.conversation_id in self.checked:
            return False
        return summary.conversation_initiation_source not in NON_TELEPHONY_SOURCES

    def _agent_fits(self, agent_id: str | None) -> bool:
        return self.hints.agent_id is None or agent_id == self.hints.agent_id

    def _query(self, **overrides: Any) -> ListQuery:
        h = self.hints
        base: dict[str, Any] = {
            "page_size": MAX_PAGE_SIZE,
            "agent_id": h.agent_id,
            "phone_number_ids": (h.phone_number_id,) if h.phone_number_id else None,
            "call_start_after_unix": h.started_after,
            "call_start_before_unix": h.started_before,
            "conversation_initiation_source": h.initiation_source,
        }
        return ListQuery(**(base | overrides))

    def _summary(self) -> SearchSummary:
        return SearchSummary(
            steps=tuple(self.steps),
            pages=self.pages,
            checked=len(self.checked),
            requests=self.requests,
            window=(self.hints.started_after, self.hints.started_before),
        )


_UNUSABLE = frozenset({FilterSupport.IGNORED, FilterSupport.REJECTED})
