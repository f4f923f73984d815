"""Emulator profiles: which reading of the real API the emulator plays.

`DOCUMENTED` is the API as its documentation and official clients describe it; `OBSERVED` adds
every less convenient behaviour third parties report (docs/protocol.md §12): live calls that hide
their ids until they end, a filter blind to live calls, typed error bodies without a `request-id`
header, `dynamic_variables: null`, and SIP calls whose ids come in three forms. A profile file
written by `callsid-resolver doctor --json FILE` holds what one real workspace did.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

__all__ = [
    "DOCUMENTED",
    "OBSERVED",
    "PROFILES",
    "PROFILE_FORMAT",
    "EmulatorProfile",
    "ErrorBody",
    "FilterMode",
    "ProfileLike",
    "SipCallIds",
    "check_setting",
    "load_profile",
    "profile_document",
    "profile_file",
    "profile_from_document",
]

FilterMode = Literal["support", "ignore", "reject", "empty"]
ErrorBody = Literal["legacy", "typed"]
SipCallIds = Literal["documented", "observed"]
PROFILE_FORMAT = 1


@dataclass(frozen=True)
class EmulatorProfile:
    """How the emulator's HTTP side answers where the real API's behaviour is in doubt.

    Attributes:
        name: A label for reports (`"documented"`, `"observed"`, or a profile file's name).
        live_call_hides_ids: While a conversation is `initiated`/`in-progress`, its GET has no
            `metadata.phone_call`, `dynamic_variables: {}` and `transcript: []`.
        filter_sees_live_calls: `dynamic_variable_filter` matches live conversations.
        filter_mode: How the list endpoint treats `dynamic_variable_filter`: `"support"` applies
            it, `"ignore"` returns the unfiltered list, `"reject"` answers 422, `"empty"` accepts
            it and matches nothing.
        error_body: `"legacy"` `{"detail": {"status", "message"}}` or `"typed"`
            `{"detail": {"type", "code", "message", "request_id", "param"}}`.
        request_id_header: Error replies carry a `request-id` header (typed bodies always carry
            `detail.request_id`; without this header the same value comes as `x-trace-id`).
        null_dynamic_variables: Conversations without a phone record come with
            `"dynamic_variables": null`.
        sip_call_ids: `"observed"`: a SIP conversation's `phone_call.call_sid` is a UUID, its
            `call_id` an RFC 3261 Call-ID, and `system__call_id` (not `system__call_sid`) holds
            that Call-ID.
        strict_client_events: The agent socket answers a `client_tool_result` whose `result` is
            not a string with an `invalid_message` error and close code 1008.
    """

    name: str = "documented"
    live_call_hides_ids: bool = False
    filter_sees_live_calls: bool = True
    filter_mode: FilterMode = "support"
    error_body: ErrorBody = "legacy"
    request_id_header: bool = True
    null_dynamic_variables: bool = False
    sip_call_ids: SipCallIds = "documented"
    strict_client_events: bool = False

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check_setting(f.name, getattr(self, f.name))

    def settings(self) -> dict[str, Any]:
        """Every field but `name`, as a profile file's `settings` holds them."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "name"}


_CHOICES: dict[str, tuple[str, ...]] = {
    "filter_mode": get_args(FilterMode),
    "error_body": get_args(ErrorBody),
    "sip_call_ids": get_args(SipCallIds),
}


def check_setting(name: str, value: object) -> None:
    """Raise `ValueError` naming `name` unless `value` fits that profile field."""
    fields = {f.name for f in dataclasses.fields(EmulatorProfile)}
    if name not in fields:
        raise ValueError(f"unknown profile setting {name!r}; known: {sorted(fields)}")
    if name in _CHOICES:
        if value not in _CHOICES[name]:
            raise ValueError(f"profile setting {name!r} must be one of {_CHOICES[name]}")
    elif name == "name":
        if not isinstance(value, str) or not value:
            raise ValueError("profile setting 'name' must be a non-empty string")
    elif not isinstance(value, bool):
        raise ValueError(f"profile setting {name!r} must be true or false, not {value!r}")


DOCUMENTED = EmulatorProfile()
OBSERVED = EmulatorProfile(
    name="observed",
    live_call_hides_ids=True,
    filter_sees_live_calls=False,
    filter_mode="support",
    error_body="typed",
    request_id_header=False,
    null_dynamic_variables=True,
    sip_call_ids="observed",
    strict_client_events=True,
)
PROFILES = {"documented": DOCUMENTED, "observed": OBSERVED}
ProfileLike = str | os.PathLike[str] | EmulatorProfile


def load_profile(profile: ProfileLike) -> EmulatorProfile:
    """A profile from its name (`"documented"`, `"observed"`), a profile file, or as given.

    A file is `{"callsid_resolver_profile": 1, "name": ..., "settings": {...}, "measured": {...}}`;
    a setting it leaves out takes the `OBSERVED` value (unknown means pessimistic), and
    `measured` is evidence for people, ignored here.

    Raises:
        ValueError: an unknown name, a file that is not a profile, or an unknown or ill-typed
            setting (the message names it).
        OSError: the file cannot be read.
    """
    if isinstance(profile, EmulatorProfile):
        return profile
    if isinstance(profile, str) and profile in PROFILES:
        return PROFILES[profile]
    path = Path(profile)
    if isinstance(profile, str) and not path.suffix and not path.exists():
        raise ValueError(
            f"unknown profile {profile!r}: use 'documented', 'observed' or a profile JSON file"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    return profile_from_document(data, source=str(path), default_name=path.stem)


def profile_from_document(
    data: object, *, source: str = "profile", default_name: str = "custom"
) -> EmulatorProfile:
    """The profile a parsed profile file describes (see `load_profile`).

    Raises:
        ValueError: not a profile document, or an unknown or ill-typed setting (named).
    """
    if not isinstance(data, dict) or data.get("callsid_resolver_profile") != PROFILE_FORMAT:
        raise ValueError(f'{source}: not a profile (no "callsid_resolver_profile": 1)')
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise ValueError(f"{source}: 'settings' must be an object")
    if "name" in settings:
        raise ValueError(f"{source}: 'name' belongs at the top level, not in 'settings'")
    for name, value in settings.items():
        check_setting(name, value)
    name = data.get("name") or default_name
    return dataclasses.replace(OBSERVED, name=str(name), **settings)


def profile_document(
    profile: EmulatorProfile, measured: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The profile-file object that `load_profile` reads back as `profile`."""
    return {
        "callsid_resolver_profile": PROFILE_FORMAT,
        "name": profile.name,
        "settings": profile.settings(),
        "measured": measured or {},
    }


def profile_file(profile: EmulatorProfile, measured: dict[str, Any] | None = None) -> str:
    """The JSON text of a profile file that `load_profile` reads back as `profile`."""
    return json.dumps(profile_document(profile, measured), indent=2) + "\n"
