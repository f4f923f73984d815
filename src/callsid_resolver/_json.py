"""JSON from peers we do not control, decoded with bounds on size and nesting.

`json.loads` recurses once per nesting level: 200,000 brackets raise `RecursionError`, which
callers that expect `ValueError` for bad input do not catch, and a depth just under the
interpreter's limit still breaks any later recursive walk of the value (repr, `json.dumps`,
pydantic). Every message this library reads from a socket, a Redis channel or a webhook body is
a few levels deep, so a generous bound refuses only hostile or broken input. No I/O here.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

__all__ = ["MAX_DEPTH", "Json", "JsonRefused", "loads_bounded"]

Json = dict[str, Any]
"""A JSON object as the API and the emulator exchange it."""

MAX_DEPTH = 64
_ESCAPE = re.compile(r"\\.", re.DOTALL)
_STRING = re.compile(r'"[^"]*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class JsonRefused(ValueError):
    """The text was not decoded: too large or nested too deeply (a `ValueError`, like bad JSON)."""


def loads_bounded(data: str | bytes, *, max_depth: int = MAX_DEPTH, max_size: int) -> Any:
    """`json.loads(data)`, refused with `JsonRefused` beyond `max_size` characters or bytes, or
    nested deeper than `max_depth` (checked before decoding, in one pass over the brackets).

    Raises `ValueError` (never `RecursionError`) for anything that is not acceptable JSON.
    """
    if len(data) > max_size:
        raise JsonRefused(f"JSON text of {len(data)} exceeds {max_size}")
    if _too_deep(data, max_depth):
        raise JsonRefused(f"JSON nested deeper than {max_depth}")
    try:
        return json.loads(data)
    except RecursionError:  # unreachable after the scan for UTF-8; UTF-16/32 bytes skip it
        raise JsonRefused("JSON nested too deeply") from None


def _too_deep(data: str | bytes, max_depth: int) -> bool:
    if isinstance(data, bytes):
        try:
            data = data.decode()
        except UnicodeDecodeError:
            return False  # UTF-16/32 or not text: json.loads decides, its RecursionError caught
    if data.count("[") + data.count("{") <= max_depth:
        return False  # the common case costs two C-speed counts
    # Every step runs in C and in linear time: escapes go first (outside a string a backslash
    # is invalid JSON anyway), then strings, which can then hold no quote; what is left of the
    # brackets is summed as +1/-1.
    text = _ESCAPE.sub("", data) if "\\" in data else data
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0) > max_depth
