"""The concurrency primitives whose sync and async forms differ beyond names, written by hand.

Everything else of a sync twin is generated from its async source by `scripts/unasync.py`; what
is here cannot be: threads and a `ThreadPoolExecutor` on one side, tasks on the other.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import islice
from typing import Any, Protocol

from ._core._api import ListQuery
from ._core._ops import Fetch
from ._models import Conversation

# The resolver's parallel reads
#
# `Fetch` (docs/resolution.md): GET the listed conversations as wide as the lookup's
# `ReadWindow` allows, list the walk's next page in a free slot once every read has started, and
# stop starting reads once one shows the call. The window itself is the I/O-free
# `_core._window.ReadWindow`; these drivers only start reads and report answers to it.

OnRetry = Callable[[int], None]
"""Told the status of each answer that is about to be retried (the client's `on_retry`)."""
FetchOutcome = tuple[list[Conversation], int, object]
"""What a `Fetch` is answered with: the conversations read (in the asked order), the requests
they cost, and what listing `Fetch.then` gave (`(page, requests)`, its error, or None)."""
Sleep = Callable[[float], object]
"""The blocking resolver's `sleep` (default `time.sleep`)."""
AsyncSleep = Callable[[float], Awaitable[object]]
"""The async resolver's `sleep` (default `asyncio.sleep`)."""

ReadAnswer = tuple[Conversation | None, int]
"""One read's answer: the conversation (None when it is gone, 404) and the requests it cost."""
ReadOne = Callable[[str, OnRetry], ReadAnswer]
ListAhead = Callable[[ListQuery, OnRetry], object]
AsyncReadOne = Callable[[str, OnRetry], Awaitable[ReadAnswer]]
AsyncListAhead = Callable[[ListQuery, OnRetry], Awaitable[object]]


def on_429(ticket: int, refused: Callable[[int], object]) -> OnRetry:
    """What a read tells its window when an answer is about to be retried: only a 429 says
    that the workspace's concurrency limit is reached (docs/protocol.md §10); a 5xx does not."""

    def on_retry(status: int) -> None:
        if status == 429:
            refused(ticket)

    return on_retry


def parallel_reads(op: Fetch, read: ReadOne, list_ahead: ListAhead) -> FetchOutcome:
    """Answer `op` with reads on worker threads, at most the window's width at a time."""
    window, todo, reads = op.window, iter(op.conversation_ids), _Reads(op)
    # Tickets of reads answered 429, appended by the workers: only this thread drives the
    # window, at each completion, which is as soon as its next `room` is asked for.
    refused: deque[int] = deque()
    listing: Future[Any] | None = None  # the reads' futures and the listing's share one set
    width = min(window.limit, len(op.conversation_ids)) + (op.then is not None)
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="callsid-fetch") as pool:

        def start(count: int) -> set[Future[Any]]:
            nonlocal listing
            ids = list(islice(todo, count))
            more: set[Future[Any]] = {
                pool.submit(read, cid, on_429(window.start(), refused.append)) for cid in ids
            }
            if op.then is not None and listing is None and count > len(ids) and not reads.found:
                listing = pool.submit(list_ahead, op.then, on_429(window.start(), refused.append))
                more.add(listing)
            return more

        running = start(window.room(0))
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            while refused:
                window.congested(refused.popleft())
            reads.take(done, listing)
            if not reads.found:
                running |= start(window.room(len(running)))
    return reads.outcome(listing)


async def async_parallel_reads(
    op: Fetch, read: AsyncReadOne, list_ahead: AsyncListAhead
) -> FetchOutcome:
    """Answer `op` with reads in tasks, at most the window's width at a time."""
    window, todo, reads = op.window, iter(op.conversation_ids), _Reads(op)
    listing: asyncio.Future[Any] | None = None  # the reads' tasks and the listing's share a set

    def start(count: int) -> set[asyncio.Future[Any]]:
        nonlocal listing
        ids = list(islice(todo, count))
        more: set[asyncio.Future[Any]] = {
            asyncio.ensure_future(read(cid, on_429(window.start(), window.congested)))
            for cid in ids
        }
        if op.then is not None and listing is None and count > len(ids) and not reads.found:
            on_retry = on_429(window.start(), window.congested)
            listing = asyncio.ensure_future(list_ahead(op.then, on_retry))
            more.add(listing)
        return more

    running = start(window.room(0))
    try:
        while running:
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            reads.take(done, listing)
            if not reads.found:
                running |= start(window.room(len(running)))
    finally:
        for task in running:
            task.cancel()
    return reads.outcome(listing)


class _Done(Protocol):
    def result(self) -> Any: ...


class _Reads:
    """What the reads of one `Fetch` gave so far; the part both drivers share."""

    def __init__(self, op: Fetch) -> None:
        self.op = op
        self.fetched: dict[str, Conversation] = {}
        self.spent = 0
        self.found = False  # a read showed the call: start no more

    def take(self, done: Iterable[_Done], listing: _Done | None) -> None:
        """Count each completion in the window; keep each read's conversation (None: gone)."""
        for future in done:
            self.op.window.answered()
            if future is listing:
                continue
            answer: ReadAnswer = future.result()
            conversation, requests = answer
            self.spent += requests
            if conversation is not None:
                self.fetched[conversation.conversation_id] = conversation
                self.found |= conversation.matched_by(self.op.call_sid) is not None

    def outcome(self, listing: _Done | None) -> FetchOutcome:
        """The conversations read, in the order asked, what they cost, and the listing's result."""
        listed = listing.result() if listing is not None else None
        kept = [self.fetched[c] for c in self.op.conversation_ids if c in self.fetched]
        return kept, self.spent, listed
