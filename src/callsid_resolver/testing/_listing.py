"""`GET /v1/convai/conversations`: filters, sort and cursor pages, as the API documents them."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

Json = dict[str, Any]
Predicate = Callable[[Json], bool]

DYNAMIC_FILTERS = ("dynamic_variable_filter", "dynamic_variable_params")


def list_page(
    newest_first: list[Json],
    params: Sequence[tuple[str, str]],
    filter_mode: str,
    by_call_sid: dict[str, Json] | None = None,
) -> tuple[int, Any]:
    one = dict(params)
    many: dict[str, list[str]] = {}
    for key, value in params:
        many.setdefault(key, []).append(value)
    try:
        size = int(one.get("page_size", "30"))
    except ValueError:
        return 422, _invalid("page_size", "Input should be a valid integer", one["page_size"])
    if not 1 <= size <= 100:
        return 422, _invalid("page_size", "Input should be less than or equal to 100", str(size))
    predicates: list[Predicate] = []
    for name in DYNAMIC_FILTERS:
        for expression in many.get(name, []):
            if filter_mode == "reject":
                return 422, _invalid(name, "Unknown query parameter", expression)
            if filter_mode == "support":
                predicate = _dynamic(expression)
                if predicate is None:
                    return 422, _invalid(name, "Expected name:op:value", expression)
                predicates.append(predicate)
    predicates += _plain_filters(one, many)
    rows = newest_first
    wanted = many.get("dynamic_variable_filter", []) + many.get("dynamic_variable_params", [])
    if filter_mode == "support" and by_call_sid is not None and len(wanted) == 1:
        # The resolver's one-request lookup: answered from an index, as a real API would,
        # so a 100,000-call history does not make the emulator the bottleneck.
        name, op, value = ([*wanted[0].split(":", 2), "", ""])[:3]
        if name == "system__call_sid" and op == "eq" and value:
            rows = [by_call_sid[value]] if value in by_call_sid else []
    if one.get("sort_direction", "desc") == "asc":
        rows = rows[::-1]
    start = _offset(one.get("cursor"))
    if start is None:
        return 422, _invalid("cursor", "Invalid cursor", one.get("cursor", ""))
    matched: list[Json] = []
    # Walk from the cursor and stop one past the page: a deep page of a big history stays cheap.
    for position, conv in enumerate(rows[start:], start):  # noqa: B007
        if all(p(conv) for p in predicates):
            if len(matched) == size:
                break
            matched.append(conv)
    else:
        position = len(rows)
    more = position < len(rows)
    return 200, {
        "conversations": [summary(c) for c in matched],
        "next_cursor": _cursor(position) if more else None,
        "has_more": more,
    }


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
        ids = set(many["phone_number_ids"])
        out.append(lambda c: (c["metadata"].get("phone_call") or {}).get("phone_number_id") in ids)
    if "conversation_initiation_source" in one:
        source = one["conversation_initiation_source"]
        out.append(lambda c: c["metadata"].get("conversation_initiation_source") == source)
    if "exclude_statuses" in many:
        excluded = set(many["exclude_statuses"])
        out.append(lambda c: c["status"] not in excluded)
    return out


def _dynamic(expression: str) -> Predicate | None:
    """`name:op:value` over `conversation_initiation_client_data.dynamic_variables`."""
    name, _, rest = expression.partition(":")
    op, sep, value = rest.partition(":")
    if not name or not sep:
        return None

    def variable(c: Json) -> Any:
        data = c.get("conversation_initiation_client_data") or {}
        return (data.get("dynamic_variables") or {}).get(name)

    if op == "eq":  # `name:eq:` matches conversations where the variable was not set
        return lambda c: (str(v) if (v := variable(c)) is not None else "") == value
    if op == "neq":
        return lambda c: (str(v) if (v := variable(c)) is not None else "") != value
    if op == "in":
        values = set(value.split("|"))
        return lambda c: str(variable(c)) in values
    compare = {
        "gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__,
    }.get(op)  # fmt: skip
    if compare is None:
        return None
    bound = float(value)

    def numeric(c: Json) -> bool:
        try:
            return bool(compare(float(variable(c)), bound))
        except (TypeError, ValueError):
            return False

    return numeric


def summary(conv: Json) -> Json:
    """The list row of a conversation: no call SID, no phone number id, no variables."""
    meta = conv["metadata"]
    transcript = conv.get("transcript") or []
    analysis = conv.get("analysis") or {}
    return {
        "agent_id": conv["agent_id"],
        "agent_name": conv.get("agent_name"),
        "conversation_id": conv["conversation_id"],
        "start_time_unix_secs": meta["start_time_unix_secs"],
        "call_duration_secs": meta.get("call_duration_secs", 0),
        "message_count": sum(1 for t in transcript if t.get("message")),
        "user_message_count": conv.get("user_message_count"),
        "agent_message_count": conv.get("agent_message_count"),
        "status": conv["status"],
        "call_successful": analysis.get("call_successful", "unknown"),
        "transcript_summary": analysis.get("transcript_summary"),
        "call_summary_title": analysis.get("call_summary_title"),
        "conversation_initiation_source": meta.get("conversation_initiation_source"),
        "direction": (meta.get("phone_call") or {}).get("direction"),
        "tag_ids": conv.get("tag_ids") or [],
    }


def _cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"emu:{position}".encode()).decode()


def _offset(cursor: str | None) -> int | None:
    if not cursor:
        return 0
    try:
        tag, _, number = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        return int(number) if tag == "emu" and int(number) >= 0 else None
    except ValueError:
        return None


def _invalid(name: str, message: str, value: str) -> Json:
    return {
        "detail": [{"type": "value_error", "loc": ["query", name], "msg": message, "input": value}]
    }
