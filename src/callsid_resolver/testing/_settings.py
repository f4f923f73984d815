"""The emulator's knobs: one `Settings` dataclass, every value checked when it is set.

A knob is checked at assignment, whether a test sets it in Python (`emulator.latency = 0.05`)
or a test in another process sends it as JSON to `/_emulator/settings` (`RemoteEmulator`). JSON
carries no types of ours, so a typo or a wrong value is a `SettingError` naming the knob (a 422
on the control endpoint), never a knob silently set to something the emulator then misreads
(e.g. `monitor_refusal: "enterprise"`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from ._profile import (
    DOCUMENTED,
    EmulatorProfile,
    FilterMode,
    load_profile,
    profile_document,
    profile_from_document,
)

__all__ = [
    "CHECKS",
    "LOCAL",
    "REMOTE",
    "MonitorRefusal",
    "SettingError",
    "Settings",
    "check_profile",
]

MonitorRefusal = Literal["plan", "scope", "role", "monitoring_disabled", "conversation_over"]
# Marks a knob that only a test in the emulator's own process may set (not over the control
# endpoint): the signed-URL lifetime and the agent socket's timings and privacy.
LOCAL = {"local": True}


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


def _flag(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def check_profile(value: Any) -> EmulatorProfile:
    """The profile a `profile` setting names (a name, a file, a profile or a parsed file), or
    `ValueError` saying what to give."""
    if isinstance(value, Mapping):  # a parsed profile file, as the control endpoint receives it
        return profile_from_document(dict(value), source="profile setting")
    if not isinstance(value, str | os.PathLike | EmulatorProfile):
        raise ValueError("must be a profile name, a profile file or a profile object")
    try:
        return load_profile(value)
    except OSError as exc:  # a file that cannot be read: a bad value, not a crash of the server
        raise ValueError(f"cannot read the profile file: {exc.strerror or exc}") from None


CHECKS: dict[str, Callable[[Any], Any]] = {
    "profile": check_profile,
    "latency": _number(0),
    "rate_limit_every": _count_or_none,
    "concurrency_limit": _count_or_none,
    "retry_after": _text(nullable=True),
    "fail_every": _count_or_none,
    "fail_status": _status,
    "monitor_refusal": _choice((None, *get_args(MonitorRefusal))),
    "ping_interval": _number(0, strict=True),
    "agent_reply": _text(nullable=False),
    "signed_url_ttl": _number(0),
    "initiation_timeout": _number(0),
    "require_signed_url": _flag,
}


@dataclass
class Settings:
    """The knobs of an emulator, each checked when set (`SettingError`, a `ValueError`).

    `profile` is the reading of the real API being played (set it to a name, a file or an
    `EmulatorProfile`) and `filter_mode` its one field about the dynamic-variable filter;
    `latency` is seconds per request; every `rate_limit_every`th request is a 429 with
    `Retry-After: retry_after` and every `fail_every`th a `fail_status`; a request arriving
    while `concurrency_limit` are being answered is a 429. The WebSocket knobs: `ping_interval`,
    `agent_reply`, `monitor_refusal` (forces a monitor refusal), and, in-process only,
    `signed_url_ttl`, `initiation_timeout` and `require_signed_url`.
    """

    profile: EmulatorProfile = DOCUMENTED
    latency: float = 0.0
    rate_limit_every: int | None = None
    concurrency_limit: int | None = None
    retry_after: str | None = "1"
    fail_every: int | None = None
    fail_status: int = 503
    monitor_refusal: MonitorRefusal | None = None
    ping_interval: float = 1.0
    agent_reply: str = "Sure, let me check that for you."
    # docs/protocol.md §5: a signed URL leaves 15 minutes to start the conversation.
    signed_url_ttl: float = field(default=15 * 60.0, metadata=LOCAL)
    # How long the agent socket waits for the client's `conversation_initiation_client_data`.
    initiation_timeout: float = field(default=1.0, metadata=LOCAL)
    # True: the agent is private, `agent_id` alone is refused.
    require_signed_url: bool = field(default=False, metadata=LOCAL)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "filter_mode":  # a view on `profile`: its property checks it
            super().__setattr__(name, value)
            return
        check = CHECKS.get(name)
        if check is None:
            raise SettingError(name, f"unknown setting; known: {sorted(REMOTE)}")
        try:
            checked = check(value)
        except ValueError as exc:
            raise SettingError(name, str(exc)) from None
        super().__setattr__(name, checked)

    @property
    def filter_mode(self) -> FilterMode:
        """The profile's `filter_mode`; setting it replaces that one field of the profile."""
        return self.profile.filter_mode

    @filter_mode.setter
    def filter_mode(self, value: FilterMode) -> None:
        if value not in get_args(FilterMode):
            raise SettingError("filter_mode", f"must be one of {list(get_args(FilterMode))}")
        self.profile = dataclasses.replace(self.profile, filter_mode=value)

    def apply(self, settings: Mapping[str, Any]) -> None:
        """Set several remote knobs at once, or none: every value is checked before any is set
        (`profile` first, so that a `filter_mode` given with it wins).

        Raises:
            SettingError: an unknown or in-process-only knob, or a wrong value (nothing is set).
        """
        unknown = [name for name in settings if name not in REMOTE]
        if unknown:
            raise SettingError(unknown[0], f"unknown setting; known: {sorted(REMOTE)}")
        fields = {k: v for k, v in settings.items() if k != "filter_mode"}
        candidate = dataclasses.replace(self, **fields)  # checks each value, as any assignment
        if "filter_mode" in settings:
            candidate.filter_mode = settings["filter_mode"]
        for knob in dataclasses.fields(self):
            super().__setattr__(knob.name, getattr(candidate, knob.name))

    def current(self) -> dict[str, Any]:
        """Every remote knob's value, as JSON."""
        out = {name: getattr(self, name) for name in REMOTE if name != "profile"}
        return out | {"profile": profile_document(self.profile)}


# The knobs a test in another process may set through `RemoteEmulator` (`/_emulator/settings`).
REMOTE: tuple[str, ...] = (
    *(f.name for f in dataclasses.fields(Settings) if not f.metadata.get("local")),
    "filter_mode",
)
