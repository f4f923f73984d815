"""`callsid-resolver`: resolve a call SID from the shell, run the offline demo, serve the emulator.

Exit codes: 0 success, 1 no conversation for the SID, 2 bad input or usage, 3 missing or rejected
API key, 4 any other API or network failure, 5 an optional dependency is missing.

Whatever goes wrong ends in one line on stderr and one of these codes, never a traceback (`-v`
adds the traceback of an unexpected error, for a bug report).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .__version__ import __version__
from ._cli_support import (
    DOCTOR_EXIT_CODES,
    EXIT_AUTH,
    EXIT_CODES,
    EXIT_FAILURE,
    EXIT_MISSING_EXTRA,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    HelpFormatter,
    Parser,
    UsageError,
    add_profile_argument,
    base_url,
    count_at_least,
    filter_modes,
    port_number,
    profile_argument,
    request_counter,
    seconds,
    verbose_log,
)
from ._client_base import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL
from ._exceptions import (
    AuthenticationFailed,
    CallSidResolverError,
    ConversationNotFound,
    InvalidCallSid,
    MissingApiKey,
    PermissionDenied,
)
from ._sync.client import ElevenLabsClient
from ._sync.resolver import CallSidResolver

__all__ = [
    "EXIT_AUTH",
    "EXIT_FAILURE",
    "EXIT_MISSING_EXTRA",
    "EXIT_NOT_FOUND",
    "EXIT_USAGE",
    "UsageError",
    "main",
    "profile_argument",
]

TESTING_HINT = "this command needs the emulator: pip install 'callsid-resolver[testing]'"
KEY_HINT = f"export {API_KEY_ENV}=... (the CLI reads the key from the environment only)"
_EXTRAS = ("starlette", "uvicorn", "websockets")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default `sys.argv[1:]`) and return its exit code."""
    args = _parser().parse_args(argv)
    # SUPPRESS: `-v` may come before or after the command without one default hiding the other.
    args.verbose = getattr(args, "verbose", False)
    json_errors = bool(getattr(args, "json", False)) and args.run is _resolve
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # every failure becomes one line and an exit code, never a traceback
        code, kind, message = _classify(exc)
        if code == EXIT_FAILURE and kind == "internal" and args.verbose:
            traceback.print_exc()
        if json_errors:
            print(json.dumps(_error_object(exc, code, kind, message)))
        else:
            print(
                f"{'not found' if code == EXIT_NOT_FOUND else 'error'}: {message}", file=sys.stderr
            )
        return code


def _classify(exc: Exception) -> tuple[int, str, str]:
    """The exit code, a short kind for `--json`, and the one-line message for an exception."""
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in _EXTRAS:
        return EXIT_MISSING_EXTRA, "missing_extra", TESTING_HINT
    if isinstance(exc, (UsageError, InvalidCallSid)):
        return EXIT_USAGE, "usage", str(exc)
    if isinstance(exc, ConversationNotFound):
        return EXIT_NOT_FOUND, "not_found", str(exc)
    if isinstance(exc, MissingApiKey):
        return EXIT_AUTH, "missing_key", f"no ElevenLabs API key: {KEY_HINT}"
    if isinstance(exc, (AuthenticationFailed, PermissionDenied)):
        return EXIT_AUTH, "auth", f"{exc} (check {API_KEY_ENV})"
    if isinstance(exc, CallSidResolverError):
        return EXIT_FAILURE, "api", str(exc)
    if isinstance(exc, OSError):  # a file or a port: something the user can change
        return EXIT_USAGE, "usage", _os_message(exc)
    return EXIT_FAILURE, "internal", f"unexpected {type(exc).__name__}: {exc} (rerun with -v)"


def _os_message(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def _error_object(exc: Exception, code: int, kind: str, message: str) -> dict[str, Any]:
    error: dict[str, Any] = {"error": kind, "message": message, "exit_code": code}
    if isinstance(exc, ConversationNotFound):
        error["call_sid"] = exc.call_sid
        searched = exc.searched
        if searched is not None:
            names = [n for n in ("steps", "pages", "checked", "requests", "window", "truncated")]
            error["searched"] = {n: getattr(searched, n) for n in names if hasattr(searched, n)}
    return error


def _parser() -> argparse.ArgumentParser:
    from .testing._recordings import list_recordings

    common = Parser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
        help="log each request (and the traceback of a bug)",
    )  # fmt: skip
    kw: dict[str, Any] = {"epilog": EXIT_CODES, "formatter_class": HelpFormatter}
    parser = Parser(
        prog="callsid-resolver",
        description="Resolve Twilio/SIP call SIDs to ElevenLabs Agents conversations.",
        parents=[common],
        **kw,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND", parser_class=Parser)

    p = sub.add_parser(
        "resolve", help="resolve a call SID against the ElevenLabs API", parents=[common], **kw
    )
    p.add_argument("call_sid", metavar="CALL_SID", help="the call's system__call_sid (CA + 32 hex)")
    p.add_argument("--agent-id", help="narrow the search to this agent")
    p.add_argument("--phone-number-id", help="narrow the search to this agent phone number")
    p.add_argument(
        "--since",
        type=count_at_least(0),
        metavar="UNIX",
        help="calls started at or after this time",
    )
    p.add_argument(
        "--max-scan", type=count_at_least(0), default=1000, metavar="N",
        help="how many listed conversations a fallback scan may walk through (default 1000)",
    )  # fmt: skip
    p.add_argument(
        "--base-url",
        type=base_url,
        help=f"API host (regional or emulator); ${BASE_URL_ENV}, else {DEFAULT_BASE_URL}",
    )
    p.add_argument(
        "--json", action="store_true", help="print the resolution, or the error, as a JSON object"
    )
    p.set_defaults(run=_resolve)

    p = sub.add_parser(
        "demo",
        help="resolve call SIDs against the bundled emulator (offline)",
        parents=[common],
        **kw,
    )
    p.add_argument("--json", action="store_true", help="print each step as a JSON line")
    add_profile_argument(p)
    p.set_defaults(run=_demo)

    p = sub.add_parser(
        "emulator", help="serve the ElevenLabs emulator on loopback", parents=[common], **kw
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default loopback)")
    p.add_argument("--port", type=port_number, default=8000, help="TCP port; 0 picks a free one")
    p.add_argument(
        "--recording", default="default", metavar="NAME|FILE",
        help=f"a bundled recording ({', '.join(list_recordings())}), a file written by "
        "'callsid-resolver record', or none (default: default)",
    )  # fmt: skip
    p.add_argument(
        "--synthetic", type=count_at_least(0), default=0, metavar="N", help="add N generated calls"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the generated calls")
    p.add_argument("--api-key", help="accept only this key (default: any non-empty key)")
    p.add_argument(
        "--latency", type=seconds, default=0.0, metavar="SECONDS", help="delay every request"
    )
    p.add_argument(
        "--filter-mode", choices=filter_modes(),
        help="how the list endpoint treats dynamic_variable_filter (default: the profile's)",
    )  # fmt: skip
    add_profile_argument(p)
    p.set_defaults(run=_emulator)

    p = sub.add_parser(
        "record", help="record real conversations into a scrubbed recording file",
        parents=[common], **kw,
    )  # fmt: skip
    p.add_argument("out", metavar="OUT.json", help="the recording file to write")
    p.add_argument("--agent-id", help="record only this agent's conversations")
    p.add_argument(
        "--limit", type=count_at_least(1), default=50, metavar="N",
        help="record the N most recent conversations (default 50)",
    )  # fmt: skip
    p.add_argument("--force", action="store_true", help="overwrite OUT.json if it exists")
    p.add_argument(
        "--base-url", type=base_url, help=f"API host; ${BASE_URL_ENV}, else {DEFAULT_BASE_URL}"
    )
    p.set_defaults(run=_record)

    from . import _doctor as doctor

    p = sub.add_parser(
        "doctor", help="check what your ElevenLabs workspace does (read-only)", parents=[common],
        epilog=DOCTOR_EXIT_CODES, formatter_class=HelpFormatter,
    )  # fmt: skip
    doctor.add_arguments(p)
    p.set_defaults(run=doctor.run)

    from . import _mcp_cli  # its heavy imports wait for `run`

    p = sub.add_parser(
        "mcp", help="serve the mailbox MCP server (streamable HTTP, shared secret)",
        parents=[common], **kw,
    )  # fmt: skip
    _mcp_cli.add_arguments(p)
    p.set_defaults(run=_mcp_cli.run)
    return parser


# -- the commands -------------------------------------------------------------------------------
def _api_url(args: argparse.Namespace) -> str:
    """`--base-url`, else `$ELEVENLABS_BASE_URL`, else the public host; a bad one is exit 2."""
    if args.base_url is not None:
        return str(args.base_url)  # checked by argparse
    url = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    try:
        return base_url(url, source=f"${BASE_URL_ENV}")
    except argparse.ArgumentTypeError as exc:
        raise UsageError(str(exc)) from None


def _resolve(args: argparse.Namespace) -> int:
    url = _api_url(args)
    with (
        verbose_log(args.verbose),
        ElevenLabsClient(base_url=url) as client,
        request_counter(sys.stderr, enabled=not args.verbose),
    ):
        resolver = CallSidResolver(client, max_scan=args.max_scan)
        result = resolver.resolve(
            args.call_sid,
            agent_id=args.agent_id,
            phone_number_id=args.phone_number_id,
            started_after=args.since,
        )
    if args.json:
        print(result.model_dump_json())
    else:
        print(result.conversation_id)
        print(f"via {result.source}, {result.requests} request(s)", file=sys.stderr)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    profile = profile_argument(args.profile or "documented")
    return run_demo(json_lines=args.json, out=sys.stdout, profile=profile)


def _emulator(args: argparse.Namespace) -> int:
    from ._emulator_cli import build_emulator, serve

    emulator = build_emulator(args)
    with verbose_log(args.verbose, logger="callsid_resolver.emulator"):
        return serve(emulator, args, out=sys.stderr)


def _record(args: argparse.Namespace) -> int:
    from .testing._record import record_conversations

    out = Path(args.out)
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; pass --force to overwrite it, or choose another name")
    if not out.parent.is_dir():
        raise UsageError(f"no directory {out.parent} to write {out.name} into; create it first")
    key = os.environ.get(API_KEY_ENV)
    if not key:
        raise MissingApiKey(API_KEY_ENV)
    url = _api_url(args)
    tty, count = sys.stderr.isatty(), 0

    def progress(done: int, limit: int) -> None:
        nonlocal count
        count = done
        if tty:
            sys.stderr.write(f"\r{done}/{limit} conversation(s)…")
            sys.stderr.flush()

    try:
        path = record_conversations(
            url, key, out, agent_id=args.agent_id, limit=args.limit, progress=progress
        )
    finally:
        if tty:
            sys.stderr.write("\r\033[K")
    print(
        f"recorded {count} conversation(s) into {path}, scrubbed (no key, signature or "
        f"real phone number)\nserve it: callsid-resolver emulator --recording {path}",
        file=sys.stderr,
    )
    return 0
