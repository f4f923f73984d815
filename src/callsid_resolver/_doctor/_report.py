"""The doctor's output: the table, what the library will do as a result, the profile file, and
the `callsid-resolver doctor` subcommand (`add_arguments`, `run`).

Exit codes: 0 every check ran and nothing blocks the library, 1 a check found a problem the
library cannot work around (the key refused, the conversations unreadable), 2 bad usage (no key,
an unwritable `--json` file).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from .._client_base import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL
from .._exceptions import MissingApiKey
from ._diagnose import diagnose
from ._probe import Diagnosis, DoctorOptions

__all__ = ["PROFILE_FORMAT", "add_arguments", "consequences", "profile_document", "render", "run"]

PROFILE_FORMAT = 1
EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
SHARE_NOTE = (
    "This output holds no API key, signed-URL token, phone number or whole call id: "
    "paste it (or the --json file) into bug reports."
)


def render(diagnosis: Diagnosis) -> str:
    """The checks as an aligned text table, then what the library will do."""
    rows = [("check", "result", "evidence")]
    marks = {"ok": "", "note": " (!)", "problem": " (X)"}
    rows += [(c.name, c.result + marks[c.level], c.evidence) for c in diagnosis.checks]
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{r[0]:<{width[0]}}  {r[1]:<{width[1]}}  {r[2]}".rstrip() for r in rows]
    lines.insert(1, f"{'-' * width[0]}  {'-' * width[1]}  {'-' * 8}")
    lines += ["", "What the library will do:"]
    lines += [f"- {line}" for line in consequences(diagnosis)]
    return "\n".join([*lines, "", SHARE_NOTE])


def consequences(diagnosis: Diagnosis) -> list[str]:
    """One sentence per measured behaviour: how resolution and sending adapt to it."""
    results = {c.name: c for c in diagnosis.checks}
    s = diagnosis.settings
    out: list[str] = []
    if diagnosis.problem:
        blocked = ", ".join(c.name for c in diagnosis.checks if c.level == "problem")
        out.append(f"nothing works until this is fixed: {blocked} (see the evidence above)")
    out += _filter_lines(s.get("filter_mode"))
    out += _live_lines(s.get("live_call_hides_ids"), s.get("filter_sees_live_calls"))
    if "error_body" in s:
        where = "the request-id header" if s.get("request_id_header") else "the body / x-trace-id"
        out.append(f"errors are read as {s['error_body']} bodies; request ids come from {where}")
    if s.get("null_dynamic_variables"):
        out.append('some conversations carry "dynamic_variables": null; they read as none')
    signed = results.get("signed URL")
    if signed is not None and signed.result != "ok":
        out.append("ConversationSession cannot open private agents without a signed URL")
    monitor = results.get("monitor")
    if monitor is not None:
        if monitor.result == "accepted":
            out.append("Sender can reach calls ElevenLabs holds through the monitoring socket")
        else:
            out.append("the monitoring socket is closed to this key: Sender uses the mailbox")
    return out


def _live_lines(hides: bool | None, filter_sees: bool | None) -> list[str]:
    if hides is None:
        return [
            "unknown whether live calls show their SID (no live call now): the library assumes "
            "they hide it; run the doctor again during a call to find out"
        ]
    if hides:
        also = " and from the filter" if filter_sees is False else ""
        return [
            f"live calls hide their SID from GET{also}: a lookup during the call raises "
            "ConversationNotFound saying the call is live; tools should pass "
            "system__conversation_id, or resolve after the call ends"
        ]
    lines = ["a live call's GET shows its SID: the live step finds calls in flight"]
    if filter_sees is False:
        lines.append("the filter misses live calls: the live step (1 list + a GET each) finds them")
    return lines


def _filter_lines(mode: str | None) -> list[str]:
    scan = "1 list per 100 conversations + 1 GET per phone call not yet cached"
    if mode == "support":
        return ["a finished call resolves in 2 requests: the filter, then a verifying GET"]
    if mode == "reject":
        return [f"the filter is refused: dropped after its first 422; lookups scan ({scan})"]
    if mode == "ignore":
        return [f"the filter is ignored: dropped once a hit fails its check; lookups scan ({scan})"]
    if mode == "empty":
        return [
            "the filter matches nothing: its misses are never trusted, so each lookup pays it "
            f"and then scans ({scan}); CallSidResolver(..., use_filter=False) saves the request"
        ]
    return ["unknown whether the filter works (no finished phone call): misses are not trusted"]


def profile_document(diagnosis: Diagnosis, name: str) -> dict[str, Any]:
    """The emulator profile file: measured settings only; an omitted one means "assume the
    observed (pessimistic) value" to `load_profile`."""
    return {
        "callsid_resolver_profile": PROFILE_FORMAT,
        "name": name,
        "settings": dict(sorted(diagnosis.settings.items())),
        "measured": diagnosis.measured,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `callsid-resolver doctor`."""
    parser.description = (
        "Check, read-only, what your ElevenLabs workspace does where the API is undocumented "
        f"(key from ${API_KEY_ENV}). Sends nothing into any conversation; prints no key, token "
        "or phone number."
    )
    parser.add_argument(
        "--base-url",
        help=f"API host (regional or emulator); ${BASE_URL_ENV}, else {DEFAULT_BASE_URL}",
    )
    parser.add_argument("--agent-id", help="agent for the signed-URL check (default: listed)")
    parser.add_argument(
        "--monitor",
        metavar="CONVERSATION_ID",
        help="also open this live conversation's monitoring socket (read one event, send nothing)",
    )
    parser.add_argument(
        "--json", metavar="FILE", type=Path, help="write the measured emulator profile to FILE"
    )
    parser.add_argument(
        "--max-reads", type=int, default=10, metavar="N", help="conversations to GET per check"
    )


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the doctor with `ELEVENLABS_API_KEY`; print the report; the exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    if args.max_reads < 1:
        print("error: --max-reads must be at least 1", file=err)
        return EXIT_USAGE
    options = DoctorOptions(
        base_url=args.base_url,
        agent_id=args.agent_id,
        monitor=args.monitor,
        max_reads=args.max_reads,
    )
    try:
        diagnosis = diagnose(None, options)
    except MissingApiKey:
        print(f"error: the doctor needs your key in {API_KEY_ENV}", file=err)
        return EXIT_USAGE
    print(render(diagnosis), file=out)
    if args.json is not None:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
        document = profile_document(diagnosis, f"doctor {stamp}")
        try:
            args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            print(f"error: cannot write {args.json}: {exc.strerror}", file=err)
            return EXIT_USAGE
        print(f"profile written to {args.json}", file=err)
    return EXIT_PROBLEM if diagnosis.problem else EXIT_OK
