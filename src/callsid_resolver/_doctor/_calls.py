"""The checks that read conversations: `get`, `variables`, `filter`, `live call`, `live filter`
and `SIP ids` (`docs/protocol.md §2`, §3, §12)."""

from __future__ import annotations

from .._client_base import ListFilters
from .._core._plan import LIVE_EXCLUDES, NON_TELEPHONY_SOURCES
from .._exceptions import BadRequest, CallSidResolverError, NotFound
from .._models import TERMINAL_STATUSES, CallIdField, Conversation, ConversationSummary
from ._probe import (
    PROBE_CALL_SID,
    SID_VARIABLES,
    Diagnosis,
    Level,
    Probe,
    api_evidence,
    is_phone,
    short,
)

__all__ = ["check_conversations"]


def _read(probe: Probe, d: Diagnosis, row: ConversationSummary) -> Conversation | None:
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


def check_conversations(probe: Probe, d: Diagnosis, rows: list[ConversationSummary]) -> None:
    """The `get`, `filter`, `live call`, `SIP ids` and `variables` checks."""
    budget = probe.options.max_reads
    phones = [r for r in rows if r.conversation_initiation_source not in NON_TELEPHONY_SOURCES]
    finished = [r for r in phones if r.status in TERMINAL_STATUSES]
    # The filter is asked about `system__call_sid`: a Twilio call carries it; a SIP call may only
    # carry `system__call_id` (`docs/protocol.md §12`), the fallback.
    chosen: tuple[CallIdField, ConversationSummary, Conversation] | None = None
    for row in finished[:budget]:
        conversation = _read(probe, d, row)
        shown = conversation.call_ids if conversation is not None else {}
        name = next((n for n in SID_VARIABLES if n in shown), None)
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


def _check_variables(probe: Probe, d: Diagnosis, rows: list[ConversationSummary]) -> None:
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
    probe: Probe, name: str, value: str, *, op: str = "eq", live_only: bool = False
) -> list[str] | CallSidResolverError:
    """The conversation ids a filtered list answers, or the error it answered with (a 400/422
    is the server's verdict on the filter; anything else a failure of this check only)."""
    filters: ListFilters = {"dynamic_variable_filter": f"{name}:{op}:{value}", "page_size": 100}
    if live_only:
        filters["exclude_statuses"] = LIVE_EXCLUDES
    try:
        page = probe.client.list_conversations(**filters)
    except CallSidResolverError as exc:
        return exc
    return [c.conversation_id for c in page.conversations]


def _check_filter(
    probe: Probe,
    d: Diagnosis,
    name: CallIdField,
    row: ConversationSummary,
    conversation: Conversation,
) -> None:
    """Filter on the finished call's SID, and on a SID that cannot exist (`docs/protocol.md §2`).

    The pair tells the four behaviours apart even in a workspace of one conversation: `support`
    finds the call and nothing for the probe; `ignore` answers both with the unfiltered list;
    `empty` finds nothing for either; `reject` is a 400/422.
    """
    sid = conversation.call_ids[name]
    hit, control = _filtered(probe, name, sid), _filtered(probe, name, PROBE_CALL_SID)
    target = row.conversation_id
    if isinstance(hit, CallSidResolverError) or isinstance(control, CallSidResolverError):
        error = hit if isinstance(hit, CallSidResolverError) else control
        if not isinstance(error, BadRequest):
            d.add("filter", "failed", f"a filtered list failed: {str(error)[:200]}", "note")
            return
        mode, evidence = "reject", f"the list answered {api_evidence(error)}"
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


def _check_live(probe: Probe, d: Diagnosis, live: list[ConversationSummary]) -> None:
    """Does a live phone call's GET show its call id, and does the filter find it?"""
    for row in live:
        conversation = _read(probe, d, row)
        if conversation is None or not conversation.is_live:
            continue
        ids = list(conversation.call_ids.values())
        if ids:
            d.settings["live_call_hides_ids"] = False
            evidence = f"{row.conversation_id} ({row.status}) shows {short(ids[0])} while live"
            d.add("live call", "shows its call id", evidence)
            _check_live_filter(probe, d, live, conversation)
            return
        if is_phone(row, conversation):
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
    probe: Probe, d: Diagnosis, live: list[ConversationSummary], conversation: Conversation
) -> None:
    """Filter on the SID the live call's GET shows (else as if the GET had hidden it)."""
    if d.settings.get("filter_mode") != "support":
        return  # a filter that does not work on finished calls says nothing about live ones
    sid = conversation.call_ids.get("system__call_sid")
    if sid is None:
        _check_blind_filter(probe, d, live)
        return
    hit = _filtered(probe, SID_VARIABLES[0], sid)
    if isinstance(hit, CallSidResolverError) and not isinstance(hit, BadRequest):
        return
    sees = not isinstance(hit, BadRequest) and conversation.conversation_id in hit
    d.settings["filter_sees_live_calls"] = sees
    evidence = f"the filter on {short(sid)} {'found' if sees else 'missed'} the live call"
    d.add("live filter", "sees live calls" if sees else "misses live calls", evidence)


def _check_blind_filter(probe: Probe, d: Diagnosis, live: list[ConversationSummary]) -> None:
    """The live filter check without a SID to filter on: `system__call_sid:neq:` matches every
    conversation where the variable is set (`docs/protocol.md §2`); listed among live calls only,
    it finds the live phone calls if and only if the filter sees live calls."""
    if d.settings.get("filter_mode") != "support":
        return
    hit = _filtered(probe, SID_VARIABLES[0], "", op="neq", live_only=True)
    if isinstance(hit, CallSidResolverError):
        return
    phones = {r.conversation_id for r in live}
    seen = len(phones.intersection(hit))
    d.settings["filter_sees_live_calls"] = seen > 0
    evidence = f"system__call_sid:neq: matched {seen} of {len(phones)} live phone call(s)"
    d.add("live filter", "sees live calls" if seen else "misses live calls", evidence)


def _check_sip(probe: Probe, d: Diagnosis, finished: list[ConversationSummary]) -> None:
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
    has_call_id = phone.call_id not in (None, "", phone.call_sid) or (
        "system__call_id" in conversation.call_ids
    )
    d.settings["sip_call_ids"] = "observed" if has_call_id else "documented"
    shown = "a Call-ID" if has_call_id else "no Call-ID"
    d.add("SIP ids", d.settings["sip_call_ids"], f"{row.conversation_id} carries {shown}")
