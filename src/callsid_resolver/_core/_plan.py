"""The resolution strategy, written once as a generator of I/O requests (sans-I/O).

`resolve_plan` yields operations (`ReadCache`, `WriteCache`, `ListPage`, `Fetch`) and is sent each
one's outcome as `(value, http_requests)`; an `ApiError` from a list call is thrown into it. The
sync and async resolvers are small drivers of this one generator, so the strategy cannot drift
between them. Cheapest first (docs/resolution.md):

1. cache (0 requests);
2. server-side filter `dynamic_variable_filter=system__call_sid:eq:<sid>`, then the same on
   `system__call_id` (a SIP Call-ID, docs/protocol.md §12), every hit verified by a GET against
   every id the conversation shows (2 requests for a hit);
3. live first: list only `initiated`/`in-progress` conversations and GET those not yet known;
4. windowed scan, newest first, bounded by `max_scan` listed conversations; skipped when the
   caller says the call is in progress (`Hints.in_progress`) or the filter's miss is trusted.

Every conversation fetched on the way is cached in both directions, so a scan warms the cache for
the calls around it and later scans skip what they have read. A live conversation whose GET shows
no call id yet (docs/protocol.md §12) is remembered briefly (`live_ttl`) and not re-read while
the listing still shows it live; it is read again as soon as the listing shows it ended.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from .._exceptions import BadRequest, ConversationNotFound, SearchSummary
from .._models import (
    LIVE_STATUSES,
    Conversation,
    ConversationsPage,
    ConversationSummary,
    Resolution,
    ResolutionSource,
)
from ._api import MAX_PAGE_SIZE, ListQuery
from ._callsid import filter_can_express, is_twilio_call_sid
from ._ops import (
    CALL_ID,
    CALL_SID,
    NON_TELEPHONY_SOURCES,
    UNUSABLE,
    ClaimFlight,
    Fetch,
    FilterSupport,
    Hints,
    ListPage,
    Operation,
    Pause,
    Plan,
    ReadCache,
    ServerCapabilities,
    Settings,
    WriteCache,
    fits_later,
    learned_entries,
)
from ._store import CachedMapping

# `NON_TELEPHONY_SOURCES` for `_doctor`, which also lists conversations.
__all__ = ["LIVE_EXCLUDES", "NON_TELEPHONY_SOURCES", "resolve_plan"]

LIVE_EXCLUDES = ("processing", "done", "failed")
# What a listed page costs against `max_scan` at least: an empty page with `has_more` (returned
# forever by a faulty server) must use up the budget too (docs/protocol.md §2).
MIN_PAGE_COST = 10


def resolve_plan(call_sid: str, hints: Hints, caps: ServerCapabilities, settings: Settings) -> Plan:
    """The lookup of a validated `call_sid` as a generator of operations (module docstring)."""
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
        self.filtered_empty: set[str] = set()  # variables whose filtered list came back empty
        self.hidden_live = 0  # live conversations that showed no call id
        self.mismatched = 0  # conversations read that showed call ids, none of them ours
        self.unverified = 0  # listed conversations whose GET failed twice (404)
        self.truncated_by: str | None = None
        self.twilio_form = is_twilio_call_sid(call_sid)
        self.window = caps.window(settings.concurrency)
        # The next page of a walk, listed by the page's fetch once all its reads have started
        # (`Fetch.then`), and what that listing gave: `(page, requests)` or the error it raised.
        self.next_query: ListQuery | None = None
        self.prefetched: tuple[ListQuery, Any] | None = None

    def run(self) -> Plan:
        cached: list[CachedMapping | None] = yield ReadCache((self.keys.sid(self.call_sid),))
        entry = self._of_the_agent(cached[0])
        if entry is None and self.settings.shared_flight:
            entry = self._of_the_agent((yield from self._wait_for_another_process()))
        if entry is not None:
            if entry.conversation_id is None:
                raise ConversationNotFound(self.call_sid, None, cached=True)
            return entry.to_resolution()

        if self.settings.use_filter and filter_can_express(self.call_sid):
            for variable in (CALL_SID, CALL_ID):
                found = yield from self._filtered(variable)
                if found is not None:
                    return found
        elif self.settings.use_filter and self.caps.call_id_filter not in UNUSABLE:
            found = yield from self._with_a_call_id()
            if found is not None:
                return found
        in_progress = self.hints.in_progress
        if self.settings.live_first or in_progress:
            found = yield from self._walk("live", self._query(exclude_statuses=LIVE_EXCLUDES))
            if found is not None:
                return found
        if not (in_progress or self._trusted_miss()):
            found = yield from self._walk("scan", self._query())
            if found is not None:
                return found

        # A miss is remembered only when it is final: not while the caller says the call is
        # live, nor when live calls hid their ids or listed ones could not be read (404), since
        # the call may be one of them and must be found as soon as it shows.
        if not (in_progress or self.hidden_live or self.unverified):
            miss = CachedMapping(call_sid=self.call_sid, conversation_id=None)
            key, ttl = self.keys.sid(self.call_sid), self.settings.negative_ttl
            yield WriteCache({key: miss}, ttl, only_if_absent=True)
        raise ConversationNotFound(self.call_sid, self._summary(), live=in_progress)

    def _trusted_miss(self) -> bool:
        """Once the server has proven it filters on system variables, empty filtered lists on
        both id variables are a real miss; only calls too new to be indexed remain, and the
        live step covers them. Only for Twilio's form: a SIP call's UUID `call_sid` may be in
        no variable at all (docs/protocol.md §12), so any other id is also scanned for."""
        return (
            is_twilio_call_sid(self.call_sid)
            and self.caps.dynamic_variable_filter is FilterSupport.WORKS
            and {CALL_SID, CALL_ID} <= self.filtered_empty
        )

    def _wait_for_another_process(self) -> Generator[Operation, Any, CachedMapping | None]:
        """Claim this SID's lookup for the fleet, or wait for the holder's answer in the cache."""
        lock, poll = self.keys.lock(self.call_sid), self.settings.flight_poll
        waited = 0.0
        while waited < self.settings.flight_ttl:
            if (yield ClaimFlight(lock, self.settings.flight_ttl)):
                # A holder may have answered and let go between our first read and our claim:
                # its answer is in the cache, and a lookup of our own would cost the API twice.
                held: CachedMapping | None = (yield ReadCache((self.keys.sid(self.call_sid),)))[0]
                return held
            yield Pause(poll)
            waited += poll
            entry: CachedMapping | None = (yield ReadCache((self.keys.sid(self.call_sid),)))[0]
            if entry is not None:
                return entry
        return None  # the holder is too slow: look it up ourselves

    def _filtered(self, variable: str) -> Generator[Operation, Any, Resolution | None]:
        if self.caps.of(variable) in UNUSABLE:
            return None
        if "filter" not in self.steps:
            self.steps.append("filter")
        query = self._query(
            page_size=self.settings.filter_page_size,
            dynamic_variable_filter=f"{variable}:eq:{self.call_sid}",
        )
        try:
            page: ConversationsPage = yield from self._list(query)
        except BadRequest:
            self.caps.learn(variable, FilterSupport.REJECTED)
            return None
        if not page.conversations:
            self.filtered_empty.add(variable)
            return None
        mismatched_before = self.mismatched
        found = yield from self._check(page.conversations, "filter")
        if found is not None:
            self.caps.learn(variable, FilterSupport.WORKS)
        elif self.mismatched > mismatched_before:
            # A listed conversation was read and showed other ids: the server ignored the
            # filter. One that showed none (live) or could not be read (404) proves nothing.
            self.caps.learn(variable, FilterSupport.IGNORED)
        return found

    def _with_a_call_id(self) -> Generator[Operation, Any, Resolution | None]:
        """For an id `name:eq:` may not carry (a Call-ID holding `:`): walk only the calls that
        have a Call-ID at all (`system__call_id:neq:`, docs/protocol.md §2), usually a small
        share of the history. Every hit is verified, and a miss proves nothing (the id may be
        in no variable), so the scan still follows; it skips what was read here."""
        live_only = LIVE_EXCLUDES if self.hints.in_progress else None  # never the history
        query = self._query(dynamic_variable_filter=f"{CALL_ID}:neq:", exclude_statuses=live_only)
        try:
            return (yield from self._walk("filter", query))
        except BadRequest:
            self.caps.learn(CALL_ID, FilterSupport.REJECTED)
            return None

    def _walk(
        self, step: ResolutionSource, query: ListQuery | None
    ) -> Generator[Operation, Any, Resolution | None]:
        """List newest first and check each candidate page by page, within `max_scan`; calls
        whose source does not fit the id's form (`fits_later`) are checked after the rest."""
        self.steps.append(step)
        self.truncated_by = None  # the last walk says whether the search reached the end
        later: list[ConversationSummary] = []
        found = yield from self._pages(step, query, later)
        if found is None and later:
            found = yield from self._check(later, step)
        return found

    def _pages(
        self, step: ResolutionSource, query: ListQuery | None, later: list[ConversationSummary]
    ) -> Generator[Operation, Any, Resolution | None]:
        listed = 0
        cursors: set[str | None] = set()
        while query is not None:
            if listed >= self.settings.max_scan:
                self.truncated_by = "max_scan"
                return None
            cursors.add(query.cursor)
            page: ConversationsPage = yield from self._list(query)
            listed += max(len(page.conversations), MIN_PAGE_COST)
            candidates: list[ConversationSummary] = []
            for s in page.conversations:
                if not self._worth_checking(s):
                    continue
                source = s.conversation_initiation_source
                (later if fits_later(self.twilio_form, source) else candidates).append(s)
            following = query.next(page)
            if following is not None and following.cursor not in cursors:
                self.next_query = following if listed < self.settings.max_scan else None
            found = yield from self._check(candidates, step)
            self.next_query = None
            if found is not None:
                return found
            query = following
            if query is not None and query.cursor in cursors:
                self.truncated_by = "cursor_loop"  # A→B→A: the walk would never end
                return None
        return None

    def _check(
        self, listed: Sequence[ConversationSummary], step: ResolutionSource
    ) -> Generator[Operation, Any, Resolution | None]:
        """GET the candidates not already known, cache what they teach, return the match if any."""
        statuses = {s.conversation_id: s.status for s in listed}
        ids = [i for i in statuses if i not in self.checked]
        if not ids:
            return None
        known: list[CachedMapping | None] = yield ReadCache(
            tuple(self.keys.conversation(i) for i in ids)
        )
        unknown: list[str] = []
        for conversation_id, entry in zip(ids, known, strict=True):
            if entry is None:
                unknown.append(conversation_id)
                continue
            self.checked.add(conversation_id)
            shown = {entry.call_sid, *entry.call_ids} - {None}
            self.mismatched += bool(shown) and self.call_sid not in shown
            if self._entry_matches(entry):
                found = entry.model_copy(update={"call_sid": self.call_sid})
                return found.to_resolution(self.requests)
            elif entry.call_sid is None and entry.status in LIVE_STATUSES:
                # Remembered as live and showing no id: skipped while the listing shows it in
                # the same state, read again once it moved on (`initiated` → `in-progress` may
                # fill the phone record in; an ended call shows its ids).
                if statuses[conversation_id] == entry.status:
                    self.hidden_live += 1
                else:
                    unknown.append(conversation_id)
        if not unknown:
            return None
        conversations = yield from self._fetch(unknown)
        entries, hidden = learned_entries(self.keys, conversations)
        if entries:
            yield WriteCache(entries)
        if hidden:
            yield WriteCache(hidden, self.settings.live_ttl)
            self.hidden_live += len(hidden)
        for conv in conversations:
            if conv.matched_by(self.call_sid) is not None and self._agent_fits(conv.agent_id):
                return Resolution.from_conversation(
                    conv, source=step, requests=self.requests, call_id=self.call_sid
                )
            read = conv.call_ids.values()
            self.mismatched += bool(read) and self.call_sid not in read
        return None

    def _fetch(self, ids: list[str]) -> Generator[Operation, Any, list[Conversation]]:
        """GET `ids`; one that 404s (a conversation the list has just returned) is asked for once
        more, then left unverified: not checked, so a later step may read it again."""
        fetched: list[Conversation] = []
        for _ in range(2):
            conversations: list[Conversation]
            then, self.next_query = self.next_query, None  # the 404 re-read lists nothing
            conversations, spent, listed = yield Fetch(tuple(ids), self.call_sid, self.window, then)
            self.caps.learn_window(self.window)
            self.requests += spent
            if then is not None and listed is not None:
                # Counted now: a match in this page leaves the listing unused, but it was sent.
                self.requests += getattr(listed, "attempts", 1) if _failed(listed) else listed[1]
                self.prefetched = (then, listed)
            fetched += conversations
            self.checked.update(c.conversation_id for c in conversations)
            if any(c.matched_by(self.call_sid) is not None for c in conversations):
                return fetched  # the reads not started were not needed
            ids = [i for i in ids if i not in self.checked]
            if not ids:
                return fetched
        self.unverified += len(ids)
        return fetched

    def _entry_matches(self, entry: CachedMapping) -> bool:
        ids = (entry.call_sid, *entry.call_ids)
        return self.call_sid in ids and self._agent_fits(entry.agent_id)

    def _list(self, query: ListQuery) -> Generator[Operation, Any, ConversationsPage]:
        prefetched, self.prefetched = self.prefetched, None
        if prefetched is not None and prefetched[0] == query and not _failed(prefetched[1]):
            self.pages += 1
            ahead: ConversationsPage = prefetched[1][0]
            return ahead
        # Not listed ahead, or that listing failed: list it now, where an error is handled.
        try:
            listed: tuple[ConversationsPage, int] = yield ListPage(query)
        except BadRequest as exc:
            self.requests += exc.attempts  # a 400 may follow retried 5xx answers
            raise
        page, spent = listed
        self.requests += spent
        self.pages += 1
        return page

    def _worth_checking(self, summary: ConversationSummary) -> bool:
        if summary.conversation_id in self.checked:
            return False
        return summary.conversation_initiation_source not in NON_TELEPHONY_SOURCES

    def _of_the_agent(self, entry: CachedMapping | None) -> CachedMapping | None:
        """A cached entry, unless it names another agent than the `agent_id` hint (one primed
        without an agent may be of any); the resolvers' warm path applies the same rule."""
        hint = self.hints.agent_id
        if entry is None or hint is None or entry.agent_id in (None, hint):
            return entry
        return None

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
            hidden_live=self.hidden_live,
            truncated_by=self.truncated_by,
            unverified=self.unverified,
        )


def _failed(listed: Any) -> bool:
    return isinstance(listed, BaseException)
