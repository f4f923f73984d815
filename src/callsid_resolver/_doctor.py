"""`callsid-resolver doctor`: measure what a real ElevenLabs workspace does, read-only.

Several facts the library depends on are unconfirmed or reported only by third parties
(`docs/protocol.md`, the assumptions of §2, §3, §10 and §12). The doctor measures each one with
the user's own key, through the library's own `ElevenLabsClient` (its retries, deadlines and
redaction apply), and reports them as a table and as an emulator profile (`_doctor_report`).

It only ever reads: its HTTP client refuses any method but GET before a byte is sent, and the
monitoring socket, when asked for with `--monitor`, is opened, read once and closed, with nothing
sent on it. Nothing it prints or writes holds the API key, a signed URL's token, a phone number
or a whole call id (a SIP Call-ID can embed a phone number).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from ._client import ElevenLabsClient, ListFilters
from ._core._api import LIST_PATH, REQUEST_ID_HEADER
from ._core._plan import LIVE_EXCLUDES, NON_TELEPHONY_SOURCES
from ._core._retry import RetryPolicy
from ._exceptions import (
    ApiError,
    AuthenticationFailed,
    BadRequest,
    CallSidResolverError,
    NotFound,
    PermissionDenied,
)
from ._models import TERMINAL_STATUSES, Conversation, ConversationSummary

__all__ = ["Check", "Diagnosis", "DoctorOptions", "diagnose"]

Level = Literal["ok", "note", "problem"]
# A conversation id no workspace can hold: its GET measures the 404 body harmlessly.
PROBE_CONVERSATION_ID = "conv_doctor0probe0000000000000000"
# A call SID no carrier issues: the negative control of the filter check (`docs/protocol.md §2`).
PROBE_CALL_SID = "CA00000000000000000000000000d0c702"
TRACE_HEADER = "x-trace-id"
PHONE_SOURCES = frozenset({"twilio", "sip_trunk", "exotel"})
SID_VARIABLES = ("system__call_sid", "system__call_id")
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
    """Every check, the profile settings measured, and free-form evidence for the JSON file."""

    checks: list[Check] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)

    @property
    def problem(self) -> bool:
        """True when a check found something the library cannot work around."""
        return any(c.level == "problem" for c in self.checks)

    def add(self, name: str, result: str, evidence: str, level: Level = "ok") -> None:
        self.checks.append(Check(name, result, evidence, level))
        self.measured[name] = {"result": result, "evidence": evidence}


def short(call_id: str) -> str:
    """A call id cut to a prefix: enough to recognise it, too little to hold a phone number."""
    return call_id if len(call_id) <= 8 else call_id[:6] + "…"


def call_ids(conversation: Conversation) -> list[str]:
    """Every carrier id the conversation shows: its phone record's, then its variables'."""
    found: list[str] = []
    phone = conversation.metadata.phone_call
    if phone is not None:
        found += [v for v in (phone.call_sid, phone.call_id) if v]
    variables = _variables(conversation)
    for name in SID_VARIABLES:
        value = variables.get(name)
        if value not in (None, "") and str(value) not in found:
            found.append(str(value))
    return found


def _variables(conversation: Conversation) -> dict[str, Any]:
    data = conversation.conversation_initiation_client_data
    return (data.dynamic_variables if data is not None else None) or {}


def _is_phone(summary: ConversationSummary, conversation: Conversation | None = None) -> bool:
    """True when the row or the GET says this is a phone call, whatever the GET hides."""
    sources = {summary.conversation_initiation_source}
    if conversation is not None:
        sources.add(conversation.metadata.conversation_initiation_source)
        if conversation.metadata.phone_call is not None:
            return True
    return summary.direction is not None or bool(sources & PHONE_SOURCES)


class _Probe:
    """The client, with every response kept (for headers and raw bodies) and GET enforced."""

    def __init__(self, api_key: str | None, options: DoctorOptions) -> None:
        self.responses: list[httpx.Response] = []
        self.http = httpx.Client(
            transport=options.transport,
            timeout=httpx.Timeout(10.0, connect=5.0),
            event_hooks={"request": [_only_get], "response": [self.responses.append]},
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


def _only_get(request: httpx.Request) -> None:
    # The doctor's promise, enforced below every code path: it reads and never writes.
    if request.method != "GET":
        raise RuntimeError(f"the doctor only reads; refused to send {request.method}")


def diagnose(api_key: str | None, options: DoctorOptions) -> Diagnosis:
    """Run every check against the workspace of `api_key` (default `ELEVENLABS_API_KEY`).

    Raises `MissingApiKey` when there is no key at all; every other failure becomes a check.
    """
    probe = _Probe(api_key, options)
    diagnosis = Diagnosis()
    try:
        page = _check_key_and_list(probe, diagnosis)
        if page is not None:
            _check_conversations(probe, diagnosis, page)
        _check_errors(probe, diagnosis)
        _check_signed_url(probe, diagnosis, page)
        if options.monitor is not None:
            from ._doctor_monitor import check_monitor

            check_monitor(probe.client, options.monitor, diagnosis, options.monitor_timeout)
    finally:
        probe.close()
    diagnosis.checks.sort(key=lambda c: ORDER.index(c.name))
    return diagnosis


def _api_evidence(exc: ApiError) -> str:
    parts = [f"{exc.status_code}"]
    if exc.error_code:
        parts.append(exc.error_code)
    if exc.error_message:
        parts.append(repr(exc.error_message[:160]))
    return " ".join(parts)


def _check_key_and_list(probe: _Probe, d: Diagnosis) -> list[ConversationSummary] | None:
    try:
        page = probe.client.list_conversations(page_size=100)
    except AuthenticationFailed as exc:
        d.add("key", "refused", f"GET {LIST_PATH}: {_api_evidence(exc)}", "problem")
        return None
    except PermissionDenied as exc:
        d.add("key", "accepted, lacks a permission", _api_evidence(exc), "problem")
        d.add("list", "refused", f"GET {LIST_PATH}: needs the key's Agents read access", "problem")
        return None
    except CallSidResolverError as exc:
        d.add("key", "unknown", "the list request failed before the key was judged", "note")
        d.add("list", "failed", str(exc)[:200], "problem")
        return None
    d.add("key", "ok", f"GET {LIST_PATH} answered 200")
    rows = page.conversations
    live = sum(1 for c in rows if c.is_live)
    more = ", more pages" if page.has_more else ""
    d.add("list", "ok", f"{len(rows)} conversation(s) on the first page ({live} live){more}")
    return rows


def _read(probe: _Probe, d: Diagnosis, row: ConversationSummary) -> Conversation | None:
    """GET one conversation; a failure is recorded once as the `get` check's verdict."""
    if row.conversation_id in probe.read:
        return probe.read[row.conversation_id]
    try:
        conversation = probe.get(row.conversation_id)
    except CallSidResolverError as exc:
        if not any(c.name == "get" for c in d.checks):
            level: Level = "note" if isinstance(exc, NotFound) else "problem"
            d.add("get", "failed", f"GET {row.conversation_id}: {str(exc)[:200]}", level)
        conversation = None
    # Read from the raw body: a model that refused the null is itself the finding.
    body = probe.raw() if probe.responses and probe.responses[-1].is_success else None
    data = body.get("conversation_initiation_client_data") if isinstance(body, dict) else None
    if isinstance(data, dict) and "dynamic_variables" in data and data["dynamic_variables"] is None:
        d.settings["null_dynamic_variables"] = True
    return conversation


def _check_conversations(probe: _Probe, d: Diagnosis, rows: list[ConversationSummary]) -> None:
    """The `get`, `filter`, `live call`, `SIP ids` and `variables` checks."""
    budget = probe.options.max_reads
    phones = [r for r in rows if r.conversation_initiation_source not in NON_TELEPHONY_SOURCES]
    finished = [r for r in phones if r.status in TERMINAL_STATUSES]
    # The filter is asked about `system__call_sid`: a Twilio call carries it; a SIP call may only
    # carry `system__call_id` (`docs/protocol.md §12`), the fallback.
    chosen: tuple[str, ConversationSummary, Conversation] | None = None
    for row in finished[:budget]:
        conversation = _read(probe, d, row)
        variables = _variables(conversation) if conversation is not None else {}
        name = next((n for n in SID_VARIABLES if variables.get(n) not in (None, "")), None)
        if conversation is None or name is None:
            continue
        if chosen is None or name == SID_VARIABLES[0]:
            chosen = (name, row, conversation)
        if name == SID_VARIABLES[0]:
            break
    _check_variables(probe, d, rows)
    if not any(c.name == "get" for c in d.checks):
        if probe.read:
            d.add("get", "ok", f"GET {next(iter(probe.read))} answered 200")
        else:
            d.add("get", "unknown", "no conversation to read in this workspace", "note")
    if chosen is None:
        why = f"no finished phone call with a call id among the newest {len(rows)} conversation(s)"
        d.add("filter", "unknown", why, "note")
    else:
        _check_filter(probe, d, *chosen)
    _check_live(probe, d, [r for r in phones if r.is_live][:budget])
    _check_sip(probe, d, finished)


def _check_variables(probe: _Probe, d: Diagnosis, rows: list[ConversationSummary]) -> None:
    """Reads the newest conversation that is not a phone call: is its `dynamic_variables` null?"""
    row = next((r for r in rows if r.conversation_initiation_source in NON_TELEPHONY_SOURCES), None)
    if row is None and not probe.read and rows:
        row = rows[0]
    if row is None or _read(probe, d, row) is None:
        return
    if "null_dynamic_variables" not in d.settings:
        d.settings["null_dynamic_variables"] = False
    null = d.settings["null_dynamic_variables"]
    shown = '"dynamic_variables": null' if null else "an object of variables"
    d.add("variables", "null seen" if null else "objects", f"{row.conversation_id} shows {shown}")


def _filtered(
    probe: _Probe, name: str, value: str, *, op: str = "eq", live_only: bool = False
) -> list[str] | BadRequest:
    filters: ListFilters = {"dynamic_variable_filter": f"{name}:{op}:{value}", "page_size": 100}
    if live_only:
        filters["exclude_statuses"] = LIVE_EXCLUDES
    try:
        page = probe.client.list_conversations(**filters)
    except BadRequest as exc:
        return exc
    return [c.conversation_id for c in page.conversations]


def _check_filter(
    probe: _Probe, d: Diagnosis, name: str, row: ConversationSummary, conversation: Conversation
) -> None:
    """Filter on the finished call's SID, and on a SID that cannot exist (`docs/protocol.md §2`).

    The pair tells the four behaviours apart even in a workspace of one conversation: `support`
    finds the call and nothing for the probe; `ignore` answers both with the unfiltered list;
    `empty` finds nothing for either; `reject` is a 400/422.
    """
    sid = str(_variables(conversation)[name])
    hit, control = _filtered(probe, name, sid), _filtered(probe, name, PROBE_CALL_SID)
    target = row.conversation_id
    if isinstance(hit, BadRequest) or isinstance(control, BadRequest):
        error = hit if isinstance(hit, BadRequest) else control
        assert isinstance(error, BadRequest)
        mode, evidence = "reject", f"the list answered {_api_evidence(error)}"
    elif control:
        mode = "ignore"
        evidence = f"a SID no call has matched {len(control)} conversation(s): filter not applied"
    elif target in hit:
        mode, evidence = "support", f"{name}={short(sid)} matched {target} only (GET verified)"
        if len(hit) > 1:
            evidence = f"{name}={short(sid)} matched {len(hit)} conversations, {target} among them"
    else:
        mode = "empty"
        evidence = f"{name}={short(sid)} (of {target}) matched {len(hit)}, not {target}"
    d.settings["filter_mode"] = mode
    level: Level = "ok" if mode == "support" else "note"
    d.add("filter", mode, evidence, level)


def _check_live(probe: _Probe, d: Diagnosis, live: list[ConversationSummary]) -> None:
    """Does a live phone call's GET show its call id, and does the filter find it?"""
    for row in live:
        conversation = _read(probe, d, row)
        if conversation is None or not conversation.is_live:
            continue
        ids = call_ids(conversation)
        if ids:
            d.settings["live_call_hides_ids"] = False
            evidence = f"{row.conversation_id} ({row.status}) shows {short(ids[0])} while live"
            d.add("live call", "shows its call id", evidence)
            _check_live_filter(probe, d, row, conversation)
            return
        if _is_phone(row, conversation):
            d.settings["live_call_hides_ids"] = True
            turns = len(conversation.transcript)
            evidence = (
                f"{row.conversation_id} ({row.status}): no phone record, no call id in its "
                f"variables, {turns} turn(s)"
            )
            d.add("live call", "hides its call id", evidence, "note")
            _check_blind_filter(probe, d, live)
            return
    why = "no live call now" if not live else "no live phone call now (only chats or unknowns)"
    d.add("live call", "unknown", f"{why}: run the doctor again during a call", "note")


def _check_live_filter(
    probe: _Probe, d: Diagnosis, row: ConversationSummary, conversation: Conversation
) -> None:
    if d.settings.get("filter_mode") != "support":
        return  # a filter that does not work on finished calls says nothing about live ones
    sid = _variables(conversation).get("system__call_sid")
    if not sid:
        return
    hit = _filtered(probe, SID_VARIABLES[0], str(sid))
    sees = not isinstance(hit, BadRequest) and row.conversation_id in hit
    d.settings["filter_sees_live_calls"] = sees
    evidence = f"the filter on {short(str(sid))} {'found' if sees else 'missed'} the live call"
    d.add("live filter", "sees live calls" if sees else "misses live calls", evidence)


def _check_blind_filter(probe: _Probe, d: Diagnosis, live: list[ConversationSummary]) -> None:
    """The live filter check without a SID to filter on: `system__call_sid:neq:` matches every
    conversation where the variable is set (`docs/protocol.md §2`); listed among live calls only,
    it finds the live phone calls if and only if the filter sees live calls."""
    if d.settings.get("filter_mode") != "support":
        return
    hit = _filtered(probe, SID_VARIABLES[0], "", op="neq", live_only=True)
    if isinstance(hit, BadRequest):
        return
    phones = {r.conversation_id for r in live}
    seen = len(phones.intersection(hit))
    d.settings["filter_sees_live_calls"] = seen > 0
    evidence = f"system__call_sid:neq: matched {seen} of {len(phones)} live phone call(s)"
    d.add("live filter", "sees live calls" if seen else "misses live calls", evidence)


def _check_sip(probe: _Probe, d: Diagnosis, finished: list[ConversationSummary]) -> None:
    """Which ids a finished SIP-trunk call carries (`docs/protocol.md §12`): a Call-ID in
    `phone_call.call_id` or `system__call_id` is the observed shape."""
    row = next((r for r in finished if r.conversation_initiation_source == "sip_trunk"), None)
    if row is None:
        return
    conversation = probe.read.get(row.conversation_id) or _read(probe, d, row)
    phone = conversation.metadata.phone_call if conversation is not None else None
    if conversation is None or phone is None or phone.type != "sip_trunking":
        return
    # The documented record repeats the SID as `call_id` (or leaves it out); the observed one
    # holds a distinct RFC 3261 Call-ID there and in `system__call_id`.
    has_call_id = phone.call_id not in (None, "", phone.call_sid) or bool(
        _variables(conversation).get("system__call_id")
    )
    d.settings["sip_call_ids"] = "observed" if has_call_id else "documented"
    shown = "a Call-ID" if has_call_id else "no Call-ID"
    d.add("SIP ids", d.settings["sip_call_ids"], f"{row.conversation_id} carries {shown}")


def _check_errors(probe: _Probe, d: Diagnosis) -> None:
    """The error body and the request id's place, from two harmless failing requests."""
    seen: list[tuple[str, httpx.Response]] = []
    try:
        probe.client.get_conversation(PROBE_CONVERSATION_ID)
        d.add("errors", "unknown", f"GET {PROBE_CONVERSATION_ID} unexpectedly answered 200", "note")
        return
    except ApiError:
        seen.append((f"GET {PROBE_CONVERSATION_ID}", probe.responses[-1]))
    except CallSidResolverError as exc:
        d.add("errors", "unknown", f"the probe failed: {str(exc)[:160]}", "note")
        return
    try:
        no_key = probe.http.get(probe.client.base_url + LIST_PATH, params={"page_size": "1"})
    except httpx.HTTPError as exc:
        d.add("errors", "unknown", f"the no-key probe failed: {type(exc).__name__}", "note")
    else:
        seen.append(("no key", no_key))
    shapes, notes, header_everywhere = [], [], True
    for label, response in seen:
        shape, where, code = _error_shape(probe.raw(response), response.headers)
        shapes.append(shape)
        header_everywhere = header_everywhere and REQUEST_ID_HEADER in response.headers
        notes.append(f"{label}: {response.status_code} {shape} {code or '-'}, id in {where}")
    body = "typed" if "typed" in shapes else "legacy" if "legacy" in shapes else None
    if body is not None:
        d.settings["error_body"] = body
    d.settings["request_id_header"] = header_everywhere
    d.add("errors", body or "unrecognised", "; ".join(notes), "ok" if body else "note")


def _error_shape(body: Any, headers: httpx.Headers) -> tuple[str, str, str | None]:
    """(`typed`/`legacy`/`other`, where the request id is, the error code) of one error reply."""
    detail = body.get("detail") if isinstance(body, dict) else None
    places = [h for h in (REQUEST_ID_HEADER, TRACE_HEADER) if h in headers]
    shape, code = "other", None
    if isinstance(detail, dict):
        if "code" in detail or "type" in detail:
            shape, code = "typed", detail.get("code")
        elif "status" in detail:
            shape, code = "legacy", detail.get("status")
        if detail.get("request_id"):
            places.append("body")
    return shape, " + ".join(places) or "nowhere", str(code) if code else None


def _check_signed_url(probe: _Probe, d: Diagnosis, rows: list[ConversationSummary] | None) -> None:
    agent_id = probe.options.agent_id or next((r.agent_id for r in rows or ()), None)
    if agent_id is None:
        d.add("signed URL", "unknown", "no agent id: pass --agent-id", "note")
        return
    try:
        probe.client.get_signed_url(agent_id)
    except CallSidResolverError as exc:
        d.add("signed URL", "refused", f"agent {agent_id}: {str(exc)[:200]}", "note")
        return
    # The URL itself is a credential for 15 minutes (`docs/protocol.md §5`): never shown.
    d.add("signed URL", "ok", f"agent {agent_id}: a signed URL was issued (token not shown)")
