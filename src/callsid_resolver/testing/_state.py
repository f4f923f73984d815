"""`EmulatorState`: everything a local ElevenLabs Agents API holds, and nothing that does I/O.

The conversations, the request log and counters, the scripted faults, the agent-socket sessions
and monitor commands, the signing key, the clock, and the knobs (`Settings`). The behaviour
modules (`_http`, `_agent`, `_monitor`) are functions of it; the I/O fronts hand it requests.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._json import Json
from ._requests import RequestLog
from ._session import Session
from ._settings import Settings
from ._store import ConversationStore

__all__ = [
    "CONTROL",
    "EmulatorState",
    "Fault",
    "HasState",
]

# Paths under this prefix are the emulator's control endpoint, not the API: never counted.
CONTROL = "/_emulator/"


@dataclass(frozen=True)
class Fault:
    """One scripted answer: an error status (with optional `Retry-After` and body), a hang-up
    or a 200 whose body is not JSON; only for `endpoint` when given."""

    status: int | None = None
    retry_after: str | None = None
    drop: bool = False
    malformed: bool = False
    endpoint: str | None = None
    body: Any = None
    code: str | None = None


@dataclass(eq=False)
class EmulatorState:
    """The emulator's data, counters and knobs; `api_key=None` accepts any non-empty key."""

    settings: Settings = field(default_factory=Settings)
    api_key: str | None = field(default=None, repr=False)
    clock: Callable[[], float] = time.time
    signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    requests: RequestLog = field(default_factory=RequestLog, repr=False)
    store: ConversationStore = field(default_factory=ConversationStore, repr=False)
    sessions: dict[str, Session] = field(default_factory=dict, repr=False)
    monitor_commands: dict[str, list[Json]] = field(default_factory=dict, repr=False)
    serving: int = 0  # API requests admitted and not yet answered
    peak_serving: int = 0  # the most at once since the last `reset_counts()`
    faults: list[Fault] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _call_numbers: Iterator[int] = field(
        default_factory=lambda: itertools.count(1), init=False, repr=False
    )

    # -- data ------------------------------------------------------------------------------
    def add_conversation(self, conversation: Json) -> None:
        """Add (or replace, by `conversation_id`) a full GET-conversation object."""
        self.store.add(conversation)

    def conversation(self, conversation_id: str) -> Json | None:
        """The stored conversation, every id included."""
        return self.store.get(conversation_id)

    def new_call_ids(self) -> tuple[str, str]:
        """A fresh Twilio call SID (`CA` + 32 hex) and conversation id (`conv_` + 28)."""
        n = next(self._call_numbers)
        digest = hashlib.sha256(f"{n}-{id(self)}-{self.signing_key.hex()}".encode()).hexdigest()
        return "CA" + digest[:32], "conv_" + digest[32:60]

    def add_turns(self, conversation_id: str, *turns: tuple[str, Any]) -> None:
        """Append turns to the stored transcript: the GET of a live conversation shows its turns
        so far (text turns, docs/protocol.md §3)."""
        conversation = self.store.get(conversation_id) or {}
        transcript = conversation.setdefault("transcript", [])
        started = int((conversation.get("metadata") or {}).get("start_time_unix_secs", 0))
        elapsed = max(0, int(self.clock()) - started)
        for role, text in turns:
            turn: Json = {"role": role, "message": text, "time_in_call_secs": elapsed}
            if role == "user":
                turn["source_medium"] = "text"
            transcript.append(turn)

    def end_session(self, conversation_id: str) -> None:
        """Mark a conversation over: status `done`, its duration measured on `clock`."""
        conversation = self.store.get(conversation_id)
        if conversation is None:
            return
        conversation["status"] = "done"
        if conversation_id in self.sessions:  # a recorded call keeps its recorded duration
            metadata = conversation["metadata"]
            started = int(metadata["start_time_unix_secs"])
            metadata["call_duration_secs"] = max(0, int(self.clock()) - started)

    # -- admission, faults and counters ----------------------------------------------------
    @contextmanager
    def admission(self, path: str) -> Iterator[bool]:
        """Hold one of the workspace's `concurrency_limit` slots while an API request is being
        answered (its latency included); yields False when none was free. Control requests are
        never counted."""
        if path.startswith(CONTROL):
            yield True
            return
        with self._lock:
            limit = self.settings.concurrency_limit
            admitted = limit is None or self.serving < limit
            if admitted:
                self.serving += 1
                self.peak_serving = max(self.peak_serving, self.serving)
        try:
            yield admitted
        finally:
            if admitted:
                with self._lock:
                    self.serving -= 1

    def add_faults(self, fault: Fault, times: int) -> None:
        """Queue `fault` for the next `times` requests it applies to."""
        with self._lock:
            self.faults += [fault] * times

    def take_fault(self, endpoint: str) -> Fault | None:
        """The next scripted fault for `endpoint`, removed from the queue, or None."""
        with self._lock:
            for i, fault in enumerate(self.faults):
                if fault.endpoint in (None, endpoint):
                    return self.faults.pop(i)
        return None

    def clear_faults(self) -> None:
        """Drop every scripted fault that has not fired yet."""
        with self._lock:
            self.faults.clear()

    def reset_counts(self) -> None:
        """Start counting requests from zero."""
        self.requests.reset()
        with self._lock:
            self.peak_serving = self.serving


class HasState(Protocol):
    """Anything that carries an `EmulatorState` (the `Emulator` façade does)."""

    @property
    def state(self) -> EmulatorState:
        """The emulator's state."""
        ...
