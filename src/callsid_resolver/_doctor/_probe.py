"""The doctor's building blocks: its options, its findings, and `Probe`, the library's own
client with every response kept and anything but GET refused (`callsid_resolver._doctor`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from .._core._retry import RetryPolicy
from .._exceptions import ApiError
from .._models import CallIdField, Conversation, ConversationSummary
from .._sync.client import ElevenLabsClient

__all__ = [
    "ORDER", "PROBE_CALL_SID", "PROBE_CONVERSATION_ID", "SID_VARIABLES", "TRACE_HEADER", "Check",
    "Diagnosis", "DoctorOptions", "Level", "Probe", "api_evidence", "is_phone", "only_get",
    "short",
]  # fmt: skip

Level = Literal["ok", "note", "problem"]
# A conversation id no workspace can hold: its GET measures the 404 body harmlessly.
PROBE_CONVERSATION_ID = "conv_doctor0probe0000000000000000"
# A call SID no carrier issues: the negative control of the filter check (`docs/protocol.md §2`).
PROBE_CALL_SID = "CA00000000000000000000000000d0c702"
TRACE_HEADER = "x-trace-id"
PHONE_SOURCES = frozenset({"twilio", "sip_trunk", "exotel"})
SID_VARIABLES: tuple[CallIdField, ...] = ("system__call_sid", "system__call_id")
ORDER = ("key", "list", "get", "variables", "filter", "live call", "live filter", "SIP ids",
         "errors", "signed URL", "monitor")  # fmt: skip


@dataclass(frozen=True)
class DoctorOptions:
    """What the user asked for: host, agent, monitor probe, and how much to read."""

    base_url: str | None = None
    agent_id: str | None = None
    monitor: str | None = None
    max_reads: int = 10
    monitor_timeout: float = 5.0
    transport: httpx.BaseTransport | None = None


@dataclass(frozen=True)
class Check:
    """One row of the report: what was checked, the verdict, and the evidence for it."""

    name: str
    result: str
    evidence: str
    level: Level = "ok"


@dataclass
class Diagnosis:
    """Every check, the profile settings measured, and free-form evidence for the JSON file;
    `secrets` are masked in any evidence added (and kept out of the repr)."""

    checks: list[Check] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def problem(self) -> bool:
        """True when a check found something the library cannot work around."""
        return any(c.level == "problem" for c in self.checks)

    def add(self, name: str, result: str, evidence: str, level: Level = "ok") -> None:
        for secret in self.secrets:  # an API that echoes the key back must not reach a report
            evidence = evidence.replace(secret, "***")
        self.checks.append(Check(name, result, evidence, level))
        self.measured[name] = {"result": result, "evidence": evidence}


def short(call_id: str) -> str:
    """A call id cut to a prefix: enough to recognise it, too little to hold a phone number."""
    return call_id if len(call_id) <= 8 else call_id[:6] + "…"


def is_phone(summary: ConversationSummary, conversation: Conversation | None = None) -> bool:
    """True when the row or the GET says this is a phone call, whatever the GET hides."""
    sources = {summary.conversation_initiation_source}
    if conversation is not None:
        sources.add(conversation.metadata.conversation_initiation_source)
        if conversation.metadata.phone_call is not None:
            return True
    return summary.direction is not None or bool(sources & PHONE_SOURCES)


class Probe:
    """The client, with every response kept (for headers and raw bodies) and GET enforced."""

    def __init__(self, api_key: str | None, options: DoctorOptions) -> None:
        self.responses: list[httpx.Response] = []
        self.http = httpx.Client(
            transport=options.transport,
            timeout=httpx.Timeout(10.0, connect=5.0),
            event_hooks={"request": [only_get], "response": [self.responses.append]},
        )
        retry = RetryPolicy(max_attempts=3, deadline=20.0)
        try:
            self.client = ElevenLabsClient(
                api_key, base_url=options.base_url, http_client=self.http, retry=retry
            )
        except BaseException:
            self.http.close()
            raise
        self.options = options
        self.reads = 0
        self.read: dict[str, Conversation] = {}

    def raw(self, response: httpx.Response | None = None) -> Any:
        """The JSON body of `response` (default: the last one), or None."""
        response = response if response is not None else self.responses[-1]
        try:
            return json.loads(response.read())
        except ValueError:
            return None

    def get(self, conversation_id: str) -> Conversation:
        self.reads += 1
        conversation = self.client.get_conversation(conversation_id)
        self.read[conversation_id] = conversation
        return conversation

    def close(self) -> None:
        self.client.close()
        self.http.close()


def only_get(request: httpx.Request) -> None:
    # The doctor's promise, enforced below every code path: it reads and never writes.
    if request.method != "GET":
        raise RuntimeError(f"the doctor only reads; refused to send {request.method}")


def api_evidence(exc: ApiError) -> str:
    parts = [f"{exc.status_code}"]
    if exc.error_code:
        parts.append(exc.error_code)
    if exc.error_message:
        parts.append(repr(exc.error_message[:160]))
    return " ".join(parts)
