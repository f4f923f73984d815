"""Checking the knobs a test in another process sets through `/_emulator/settings`.

JSON carries no types of ours, so every value is checked before any is applied: a typo or a
wrong value is a 422 naming the setting, never a knob silently set to something the emulator
then misreads (e.g. `monitor_refusal: "enterprise"`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, get_args

from ._profile import FilterMode, load_profile, profile_document, profile_from_document

if TYPE_CHECKING:
    from ._emulator import Emulator


class SettingError(ValueError):
    """A setting that does not exist or a value it cannot take; `name` is the setting."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def _number(minimum: float, *, strict: bool = False) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < minimum or (strict and value == minimum):
            raise ValueError(f"must be a number {'>' if strict else '>='} {minimum}")
        return value

    return check


def _count_or_none(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("must be an integer >= 1, or null")
    return value


def _choice(choices: tuple[Any, ...]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value not in choices:
            raise ValueError(f"must be one of {list(choices)}")
        return value

    return check


def _status(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
        raise ValueError("must be an HTTP error status, 400 to 599")
    return value


def _text(*, nullable: bool) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and nullable:
            return str(value)  # `retry_after: 2` means the header "2"
        if not isinstance(value, str):
            raise ValueError("must be a string" + (" or null" if nullable else ""))
        return value

    return check


def _profile(value: Any) -> Any:
    if isinstance(value, str):
        return load_profile(value)
    return profile_from_document(value, source="profile setting")


_MONITOR_REFUSALS = (None, "plan", "scope", "role", "monitoring_disabled", "conversation_over")
CHECKS: dict[str, Callable[[Any], Any]] = {
    "latency": _number(0),
    "filter_mode": _choice(get_args(FilterMode)),
    "rate_limit_every": _count_or_none,
    "concurrency_limit": _count_or_none,
    "retry_after": _text(nullable=True),
    "fail_every": _count_or_none,
    "fail_status": _status,
    "monitor_refusal": _choice(_MONITOR_REFUSALS),
    "ping_interval": _number(0, strict=True),
    "agent_reply": _text(nullable=False),
    "profile": _profile,
}


def apply(emulator: Emulator, settings: Mapping[str, Any]) -> None:
    """Check every setting, then set them all (`profile` first, so that a `filter_mode` given
    with it wins); raises `SettingError` and sets nothing when one is wrong."""
    checked: dict[str, Any] = {}
    for name, value in settings.items():
        if name not in CHECKS:
            raise SettingError(name, f"unknown setting; known: {sorted(CHECKS)}")
        try:
            checked[name] = CHECKS[name](value)
        except ValueError as exc:
            raise SettingError(name, str(exc)) from None
    if "profile" in checked:
        emulator.profile = checked.pop("profile")
    for name, value in checked.items():
        setattr(emulator, name, value)


def current(emulator: Emulator) -> dict[str, Any]:
    """Every setting's value, as JSON."""
    out = {name: getattr(emulator, name) for name in CHECKS if name != "profile"}
    return out | {"profile": profile_document(emulator.profile)}
