"""`diagnose`: every check in turn; the ones that need no conversation (`key`, `list`, `errors`,
`signed URL`) are here, the others in `_calls` and `_monitor`."""

from __future__ import annotations

from typing import Any

import httpx

from ..__version__ import __version__
from .._core._api import LIST_PATH, REQUEST_ID_HEADER
from .._exceptions import (
    ApiError,
    AuthenticationFailed,
    CallSidResolverError,
    PermissionDenied,
)
from .._models import ConversationSummary
from ._calls import check_conversations
from ._probe import (
    ORDER,
    PROBE_CONVERSATION_ID,
    TRACE_HEADER,
    Diagnosis,
    DoctorOptions,
    Probe,
    api_evidence,
)

__all__ = ["diagnose"]


def diagnose(api_key: str | None, options: DoctorOptions) -> Diagnosis:
    """Run every check against the workspace of `api_key` (default `ELEVENLABS_API_KEY`).

    Raises `MissingApiKey` when there is no key at all; every other failure becomes a check.
    """
    probe = Probe(api_key, options)
    diagnosis = Diagnosis(secrets=(probe.client.auth_headers()["xi-api-key"],))
    url = httpx.URL(probe.client.base_url)
    diagnosis.measured["host"] = f"{url.scheme}://{url.host}"  # no userinfo, port or path
    diagnosis.measured["library"] = __version__
    try:
        page = _check_key_and_list(probe, diagnosis)
        if page is not None:
            check_conversations(probe, diagnosis, page)
        _check_errors(probe, diagnosis)
        _check_signed_url(probe, diagnosis, page)
        if options.monitor is not None:
            from ._monitor import check_monitor

            check_monitor(probe.client, options.monitor, diagnosis, options.monitor_timeout)
    finally:
        probe.close()
    diagnosis.checks.sort(key=lambda c: ORDER.index(c.name))
    return diagnosis


def _check_key_and_list(probe: Probe, d: Diagnosis) -> list[ConversationSummary] | None:
    try:
        page = probe.client.list_conversations(page_size=100)
    except AuthenticationFailed as exc:
        d.add("key", "refused", f"GET {LIST_PATH}: {api_evidence(exc)}", "problem")
        return None
    except PermissionDenied as exc:
        d.add("key", "accepted, lacks a permission", api_evidence(exc), "problem")
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


def _check_errors(probe: Probe, d: Diagnosis) -> None:
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


def _check_signed_url(probe: Probe, d: Diagnosis, rows: list[ConversationSummary] | None) -> None:
    agent_id = probe.options.agent_id or next((r.agent_id for r in rows or ()), None)
    if agent_id is None:
        d.add("signed URL", "unknown", "no agent id: pass --agent-id", "note")
        return
    try:
        probe.client.get_signed_url(agent_id)
    except CallSidResolverError as exc:
        verdict = "refused" if isinstance(exc, ApiError) else "failed"
        d.add("signed URL", verdict, f"agent {agent_id}: {str(exc)[:200]}", "note")
        return
    # The URL itself is a credential for 15 minutes (`docs/protocol.md §5`): never shown.
    d.add("signed URL", "ok", f"agent {agent_id}: a signed URL was issued (token not shown)")
