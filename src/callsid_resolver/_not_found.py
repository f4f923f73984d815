"""What a failed resolution searched, and how `ConversationNotFound` words it.

Split from `_exceptions` so that module is the exception tree and little else; `SearchSummary`
is re-exported there, and its public home is `callsid_resolver`.
"""

from __future__ import annotations

from ._core._secrets import mask_phone_numbers

__all__ = ["SearchSummary", "not_found_message"]


class SearchSummary:
    """What a failed resolution looked at, so a user can tell a miss from a too-narrow search."""

    __slots__ = (
        "checked",
        "hidden_live",
        "pages",
        "requests",
        "steps",
        "truncated_by",
        "unverified",
        "window",
    )

    def __init__(
        self,
        *,
        steps: tuple[str, ...],
        pages: int,
        checked: int,
        requests: int,
        window: tuple[int | None, int | None],
        hidden_live: int = 0,
        truncated_by: str | None = None,
        unverified: int = 0,
    ) -> None:
        self.steps = steps
        self.pages = pages
        self.checked = checked
        self.requests = requests
        self.window = window
        # Live conversations whose GET showed no call id at all: the call may be one of them.
        self.hidden_live = hidden_live
        # Why a walk stopped before the end of the list: "max_scan" (the budget ran out) or
        # "cursor_loop" (the server sent a cursor seen before); None when the list ended.
        self.truncated_by = truncated_by
        # Listed conversations whose GET failed (404 twice): neither matched nor ruled out.
        self.unverified = unverified

    @property
    def truncated(self) -> bool:
        """True when the search stopped before the end of the list (see `truncated_by`)."""
        return self.truncated_by is not None

    def notes(self) -> str:
        """What left the search incomplete and how to reach further, or "" when nothing did."""
        text = ""
        if self.unverified:
            text += f"; {self.unverified} listed conversation(s) could not be read (404)"
        if self.truncated_by == "cursor_loop":
            text += "; stopped: the server sent a list cursor it had sent before"
        elif self.truncated_by is not None:
            text += (
                "; stopped at max_scan before the end of the list: narrow the search with "
                "started_after/started_before, agent_id or phone_number_id, or raise max_scan"
            )
        return text

    def __repr__(self) -> str:
        return (
            f"SearchSummary(steps={self.steps!r}, pages={self.pages}, checked={self.checked}, "
            f"requests={self.requests}, window={self.window!r}, hidden_live={self.hidden_live}, "
            f"truncated_by={self.truncated_by!r}, unverified={self.unverified})"
        )


# Where a caller can learn a live call's mapping instead of asking ElevenLabs for it.
_AT_THE_SOURCE = (
    "ElevenLabs may not show a live call's SID until it ends. Learn the mapping at the source: "
    "map a tool argument to system__conversation_id, read the outbound-call response "
    "(webhooks.mapping_from_outbound_call), use your own session's conversation id, or call "
    "remember(); or resolve after the call ends"
)


def not_found_message(
    call_sid: str, searched: SearchSummary | None, *, cached: bool, live: bool
) -> str:
    """The message of a `ConversationNotFound`: what was searched, and for a live call how to
    learn its mapping without ElevenLabs showing it. No full phone number reaches it."""
    # A SIP call id may hold the caller's number (`+15551234567@10.0.0.1`).
    sid = mask_phone_numbers(call_sid)
    if cached:
        return f"no conversation for call SID {sid} (cached miss; not searched again)"
    s = searched
    if s is None:
        return f"no conversation for call SID {sid}"
    after, before = s.window
    window = f"start time in [{after or '-inf'}, {before or 'now'}]"
    text = (
        f"no conversation for call SID {sid}: "
        f"tried {', '.join(s.steps) or 'nothing'}; {s.pages} list page(s), "
        f"{s.checked} conversation(s) checked, {s.requests} request(s), {window}"
        f"{s.notes()}"
    )
    if not live:
        return text
    hidden = (
        f"{s.hidden_live} live conversation(s) showed no call id yet"
        if s.hidden_live
        else "no live conversation showed it"
    )
    return f"{text}. The call is live and {hidden}: {_AT_THE_SOURCE}"
