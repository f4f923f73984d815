"""`GET /v1/convai/conversations`: query validation, filters, sort and cursor pages.

Follows docs/protocol.md §2. Query errors are answered the way the API (FastAPI on pydantic v2)
does: 422 with `{"detail": [{"type", "loc": ["query", name], "msg", "input", "ctx"?}]}`.

The cursor is opaque to clients. Here it is the listing key of the last row served (start time and
conversation id), the sort direction, and a checksum: a page after a cursor starts right after that
row even when conversations were added since (an outbound call placed between two pages does not
shift the walk), and a mangled cursor is a 422 instead of a wrong page.
"""

from __future__ import annotations

import base64
import hashlib
import json
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from typing import Any

from .._json import Json
from ._profile import EmulatorProfile
from ._store import ConversationStore, Key, sort_key
from ._view import filter_variables, shown

__all__ = [
    "DYNAMIC_FILTERS",
    "STATUSES",
    "SUCCESS",
    "Predicate",
    "QueryError",
    "invalid",
    "list_page",
    "summary",
    "variable_text",
]

Predicate = Callable[[Json], bool]

DYNAMIC_FILTERS = ("dynamic_variable_filter", "dynamic_variable_params")
STATUSES = ("initiated", "in-progress", "processing", "done", "failed")
SUCCESS = ("success", "failure", "unknown", "error")


class QueryError(Exception):
    """A 422: the validation error items for the `detail` list."""

    def __init__(self, *items: Json) -> None:
        super().__init__(items)
        self.items = list(items)


def invalid(name: str, kind: str, message: str, value: Any, ctx: Json | None = None) -> Json:
    item: Json = {"type": kind, "loc": ["query", name], "msg": message, "input": value}
    if ctx is not None:
        item["ctx"] = ctx
    return item


def list_page(
    store: ConversationStore, params: Sequence[tuple[str, str]], profile: EmulatorProfile
) -> Json:
    """One page of summaries as `profile` shows them; raises `QueryError` for a 422."""
    one = dict(params)
    many: dict[str, list[str]] = {}
    for key, value in params:
        many.setdefault(key, []).append(value)
    size = _integer(one, "page_size", 30)
    if not 1 <= size <= 100:
        kind, msg, ctx = (
            ("less_than_equal", "less than or equal to 100", {"le": 100})
            if size > 100
            else ("greater_than_equal", "greater than or equal to 1", {"ge": 1})
        )
        raise QueryError(
            invalid("page_size", kind, f"Input should be {msg}", one["page_size"], ctx)
        )
    descending = _choice(one, "sort_direction", ("asc", "desc"), "desc") == "desc"
    after = _integer(one, "call_start_after_unix", None)
    before = _integer(one, "call_start_before_unix", None)
    predicates = _plain_filters(one, many) + _dynamic_filters(many, profile)

    keys, rows = store.ordered()
    lookup = _call_id_lookup(many, profile.filter_mode)
    if lookup is not None:
        rows = store.with_call_id(lookup)
        keys = [sort_key(c) for c in rows]
    # Start-time bounds (inclusive: the API does not say, docs/protocol.md §2) narrow by bisection.
    lo = 0 if before is None else bisect_left(keys, (-before, ""))
    hi = len(keys) if after is None else bisect_left(keys, (-after + 1, ""))
    cursor = one.get("cursor")
    if cursor:
        last, cursor_descending = _decode(cursor)
        if cursor_descending != descending:
            raise QueryError(invalid("cursor", "value_error", "Cursor of another sort", cursor))
        if descending:
            lo = max(lo, bisect_right(keys, last))
        else:
            hi = min(hi, bisect_left(keys, last))
    positions = range(lo, hi) if descending else range(hi - 1, lo - 1, -1)

    matched: list[Json] = []
    more = False
    # Walk from the cursor and stop at the first match past the page, so a page deep into a big
    # history stays cheap and `has_more` is exact (false on the last page).
    for position in positions:
        conversation = rows[position]
        if all(p(conversation) for p in predicates):
            if len(matched) == size:
                more = True
                break
            matched.append(conversation)
    include_summary = one.get("summary_mode") == "include"
    return {
        "conversations": [summary(shown(c, profile), include_summary) for c in matched],
        "next_cursor": _encode(sort_key(matched[-1]), descending) if more else None,
        "has_more": more,
    }


def _integer(one: dict[str, str], name: str, default: int | None) -> Any:
    if name not in one:
        return default
    try:
        return int(one[name])
    except ValueError:
        message = "Input should be a valid integer, unable to parse string as an integer"
        raise QueryError(invalid(name, "int_parsing", message, one[name])) from None


def _choice(one: dict[str, str], name: str, allowed: Sequence[str], default: str) -> str:
    value = one.get(name, default)
    if value not in allowed:
        expected = " or ".join(f"'{a}'" for a in allowed)
        raise QueryError(
            invalid(name, "enum", f"Input should be {expected}", value, {"expected": expected})
        )
    return value


def _plain_filters(one: dict[str, str], many: dict[str, list[str]]) -> list[Predicate]:
    out: list[Predicate] = []
    if "agent_id" in one:
        agent = one["agent_id"]
        out.append(lambda c: c["agent_id"] == agent)
    if "call_start_after_unix" in one:
        after = int(one["call_start_after_unix"])
        out.append(lambda c: int(c["metadata"]["start_time_unix_secs"]) >= after)
    if "call_start_before_unix" in one:
        before = int(one["call_start_before_unix"])
        out.append(lambda c: int(c["metadata"]["start_time_unix_secs"]) <= before)
    if "phone_number_ids" in many:
        numbers = set(many["phone_number_ids"])
        out.append(
            lambda c: (c["metadata"].get("phone_call") or {}).get("phone_number_id") in numbers
        )
    if "conversation_initiation_source" in one:
        source = one["conversation_initiation_source"]
        out.append(lambda c: c["metadata"].get("conversation_initiation_source") == source)
    if "exclude_statuses" in many:
        for status in many["exclude_statuses"]:
            _choice({"exclude_statuses": status}, "exclude_statuses", STATUSES, "")
        excluded = set(many["exclude_statuses"])
        out.append(lambda c: c["status"] not in excluded)
    if "call_successful" in one:
        wanted = _choice(one, "call_successful", SUCCESS, "")
        out.append(lambda c: (c.get("analysis") or {}).get("call_successful", "unknown") == wanted)
    shortest = _integer(one, "call_duration_min_secs", None)
    if shortest is not None:
        out.append(lambda c: int(c["metadata"].get("call_duration_secs", 0)) >= shortest)
    longest = _integer(one, "call_duration_max_secs", None)
    if longest is not None:
        out.append(lambda c: int(c["metadata"].get("call_duration_secs", 0)) <= longest)
    if "user_id" in one:
        user = one["user_id"]
        out.append(lambda c: c.get("user_id") == user)
    return out


def _dynamic_filters(many: dict[str, list[str]], profile: EmulatorProfile) -> list[Predicate]:
    """`name:op:value` over `conversation_initiation_client_data.dynamic_variables` (AND-ed)."""
    out: list[Predicate] = []
    for name in DYNAMIC_FILTERS:
        for expression in many.get(name, []):
            if profile.filter_mode == "reject":
                # What a server that predates the filter says: FastAPI with extra="forbid".
                raise QueryError(
                    invalid(name, "extra_forbidden", "Extra inputs are not permitted", expression)
                )
            if profile.filter_mode == "empty":
                _dynamic(name, expression, profile)  # still validated, then matches nothing
                out.append(lambda c: False)
            elif profile.filter_mode == "support":
                out.append(_dynamic(name, expression, profile))
    return out


# The lookups the resolver makes, answered from the store's index as a real database would, so
# a deep history does not make the emulator the bottleneck of a benchmark.
_INDEXED = ("system__call_sid", "system__call_id")


def _call_id_lookup(many: dict[str, list[str]], filter_mode: str) -> str | None:
    if filter_mode != "support":
        return None
    for name in DYNAMIC_FILTERS:
        for expression in many.get(name, []):
            variable, op, value = [*expression.split(":", 2), "", ""][:3]
            if variable in _INDEXED and op == "eq" and value:
                return value
    return None


def variable_text(value: Any) -> str:
    """A variable as the filter compares it: as a string, unset as empty (docs/protocol.md §2)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _dynamic(param: str, expression: str, profile: EmulatorProfile) -> Predicate:
    name, _, rest = expression.partition(":")
    op, sep, value = rest.partition(":")
    if not name or not sep:
        raise QueryError(invalid(param, "value_error", "Expected name:op:value", expression))

    def text(c: Json) -> str | None:
        variables = filter_variables(c, profile)
        return None if variables is None else variable_text(variables.get(name))

    if op == "eq":  # `name:eq:` matches conversations where the variable was not set
        return lambda c: text(c) == value
    if op == "neq":
        return lambda c: (t := text(c)) is not None and t != value
    if op == "in":
        values = set(value.split("|"))
        return lambda c: text(c) in values
    compare: dict[str, Callable[[float, float], bool]] = {
        "gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__,
    }  # fmt: skip
    if op not in compare:
        message = "Operator must be one of eq, neq, gt, gte, lt, lte, in"
        raise QueryError(invalid(param, "value_error", message, expression))
    try:
        bound = float(value)
    except ValueError:
        message = f"Operator {op} needs a numeric value"
        raise QueryError(invalid(param, "value_error", message, expression)) from None

    def numeric(c: Json) -> bool:
        t = text(c)
        try:
            return t is not None and compare[op](float(t), bound)
        except ValueError:
            return False

    return numeric


def summary(conversation: Json, include_summary: bool = False) -> Json:
    """The list row (`ConversationSummaryResponseModel`) of a stored conversation.

    Like the real row it carries no call SID, no phone number id and no dynamic variables.
    """
    meta = conversation["metadata"]
    transcript = conversation.get("transcript") or []
    analysis = conversation.get("analysis") or {}
    if conversation["status"] in ("initiated", "in-progress"):
        # Observed on the real API (docs/protocol.md §2): a live call is listed with zero counts
        # even when its GET already shows turns; the row is filled in when it is processed.
        transcript = []
        conversation = {k: v for k, v in conversation.items() if not k.endswith("message_count")}
    row: Json = {
        "agent_id": conversation["agent_id"],
        "agent_name": conversation.get("agent_name"),
        "conversation_id": conversation["conversation_id"],
        "start_time_unix_secs": meta["start_time_unix_secs"],
        "call_duration_secs": meta.get("call_duration_secs", 0),
        "message_count": sum(1 for t in transcript if t.get("message")),
        "user_message_count": _count(conversation, transcript, "user"),
        "agent_message_count": _count(conversation, transcript, "agent"),
        "status": conversation["status"],
        "call_successful": analysis.get("call_successful", "unknown"),
        "transcript_summary": analysis.get("transcript_summary") if include_summary else None,
        "call_summary_title": analysis.get("call_summary_title"),
        "conversation_initiation_source": meta.get("conversation_initiation_source"),
        "direction": (meta.get("phone_call") or {}).get("direction"),
        "tool_names": sorted(
            {call["tool_name"] for t in transcript for call in t.get("tool_calls") or ()}
        ),
        "tag_ids": conversation.get("tag_ids") or [],
    }
    for name in ("cost", "termination_reason", "main_language"):
        if meta.get(name) is not None:
            row[name] = meta[name]
    return row


def _count(conversation: Json, transcript: list[Json], role: str) -> int:
    stored = conversation.get(f"{role}_message_count")
    return (
        int(stored) if stored is not None else sum(1 for t in transcript if t.get("role") == role)
    )


def _encode(last: Key, descending: bool) -> str:
    payload = json.dumps([last[0], last[1], "desc" if descending else "asc"])
    check = hashlib.sha256(payload.encode()).hexdigest()[:12]
    return base64.urlsafe_b64encode(f"{payload}|{check}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[Key, bool]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        payload, _, check = text.rpartition("|")
        if hashlib.sha256(payload.encode()).hexdigest()[:12] != check:
            raise ValueError(check)
        negated_start, conversation_id, direction = json.loads(payload)
        return (int(negated_start), str(conversation_id)), direction == "desc"
    except (ValueError, TypeError):
        raise QueryError(invalid("cursor", "value_error", "Invalid cursor", cursor)) from None
