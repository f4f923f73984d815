"""Validation of `resolve` hints, before any I/O: each bad one is an `InvalidHint` naming it."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime

from .._exceptions import InvalidHint
from ._ops import Hints

__all__ = ["MAX_HINT_LENGTH", "MAX_UNIX", "NO_HINTS", "narrow_hints"]

MAX_HINT_LENGTH = 256
# 9999-12-31T23:59:59Z: past it a datetime cannot even be built; a larger number is a mistake.
MAX_UNIX = 253_402_300_799


NO_HINTS = Hints()


def narrow_hints(
    *,
    agent_id: object = None,
    phone_number_id: object = None,
    started_after: object = None,
    started_before: object = None,
    initiation_source: object = None,
    in_progress: object = False,
) -> Hints:
    """The hints checked, before any I/O: `InvalidHint` names the first bad one. (A lookup
    without any hint takes `NO_HINTS` without a call: the resolvers check that first.)

    Typed `object`: the caller's values are checked here, whatever their static types said.
    """
    after = _instant("started_after", started_after, math.floor)
    before = _instant("started_before", started_before, math.ceil)
    if after is not None and before is not None and after > before:
        raise InvalidHint("started_after", f"{after} is later than started_before ({before})")
    return Hints(
        agent_id=_text("agent_id", agent_id),
        phone_number_id=_text("phone_number_id", phone_number_id),
        started_after=after,
        started_before=before,
        initiation_source=_text("initiation_source", initiation_source),
        in_progress=_flag("in_progress", in_progress),
    )


def _text(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidHint(name, f"expected a string, got {type(value).__name__}")
    if not value or len(value) > MAX_HINT_LENGTH:
        raise InvalidHint(name, f"{len(value)} characters; 1 to {MAX_HINT_LENGTH} are allowed")
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise InvalidHint(name, "contains whitespace or a control character")
    return value


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidHint(name, f"expected True or False, got {type(value).__name__}")
    return value


def _instant(name: str, value: object, to_int: Callable[[float], int]) -> int | None:
    """Unix seconds from a timezone-aware datetime or a finite, non-negative number."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise InvalidHint(name, "a naive datetime; give it a timezone (e.g. timezone.utc)")
        seconds: float = value.timestamp()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidHint(name, f"{value!r} is not a finite number of unix seconds")
        seconds = value
    else:
        shown = repr(value)[:40]
        raise InvalidHint(
            name,
            f"expected a timezone-aware datetime or unix seconds, got {type(value).__name__} "
            f"{shown}",
        )
    if not 0 <= seconds <= MAX_UNIX:
        raise InvalidHint(name, f"{seconds!r} is not a unix time between 0 and {MAX_UNIX}")
    return seconds if isinstance(seconds, int) else to_int(seconds)
