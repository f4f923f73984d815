"""`ReadWindow`: how many conversation reads a lookup keeps in flight, free of any I/O.

Both resolvers' `_fetch` drive one window per lookup, so the width it reached carries over from
one listed page to the next instead of starting over on every page. It behaves like TCP's
congestion window (RFC 5681): it opens by one read per answer (slow start) up to `limit`,
halves when the server answers 429 (real workspaces cap concurrent requests and answer
`concurrent_limit_exceeded`, docs/protocol.md §10, §12), and after a halving grows by one read
per window of answers (congestion avoidance), eight times slower just below the width that was
refused last, as CUBIC dwells near its last maximum (RFC 9438): a workspace's limit stays put, so
probing it often would only earn 429s. A 429 of a read started before the last halving says
nothing new, so one burst of refusals halves the window once (RFC 6582's recovery point).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DWELL", "ReadWindow"]

# How many round trips the window stays just below the width last refused before it probes that
# width again: each probe of an unchanged limit costs a 429 (1 in about 100 reads at a limit of 10).
DWELL = 8


@dataclass
class ReadWindow:
    """The read window of one lookup; `threshold` is where slow start stops (learned from an
    earlier lookup's 429s, else `limit`)."""

    limit: int
    threshold: int | None = None
    width: int = 1
    congestions: int = 0
    refused_at: int | None = None  # the width at the last 429
    _answers: int = field(default=0, repr=False)  # answers since the width last grew
    _started: int = field(default=0, repr=False)
    _recover: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("a read window needs a limit >= 1")
        self.threshold = self.limit if self.threshold is None else self.threshold
        self.width = min(max(self.width, 1), self.limit)

    @property
    def size(self) -> int:
        """How many reads may be in flight now."""
        return self.width

    def room(self, running: int) -> int:
        """How many more reads to start when `running` are in flight."""
        return max(self.width - running, 0)

    def start(self) -> int:
        """Count one read as started; its ticket, to hand back to `congested`."""
        self._started += 1
        return self._started

    def answered(self) -> None:
        """One read was answered without a 429: open the window."""
        if self.width >= self.limit:
            return
        if self.width < (self.threshold or self.limit):
            self.width += 1  # slow start: doubles per round trip
            return
        self._answers += 1
        near = self.refused_at is not None and self.width + 1 >= self.refused_at
        if self._answers >= self.width * (DWELL if near else 1):
            self.width += 1  # congestion avoidance: +1 per round trip (per DWELL near a refusal)
            self._answers = 0

    def congested(self, ticket: int) -> None:
        """The read of `ticket` was answered 429 (and will be retried): halve the window, once
        per burst; refusals of reads started before the last halving are already counted."""
        if ticket <= self._recover:
            return
        self.congestions += 1
        self.refused_at = self.width
        self.width = max(self.width // 2, 1)
        self.threshold = self.width
        self._answers = 0
        self._recover = self._started
